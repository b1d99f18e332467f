package ebpfmanager

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/events"
)

// memStore is a Store in memory; fail makes Save fail.
type memStore struct {
	mu    sync.Mutex
	saved []Declared
	saves int
	fail  error
}

func (s *memStore) Load() ([]Declared, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.saved), nil
}

func (s *memStore) Save(ds []Declared) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.saved, s.saves = slices.Clone(ds), s.saves+1
	return nil
}

// restart makes the next run's manager over the same kernel, pins and
// store, as a start with persist does.
func (h *harness) restart(t *testing.T, store *memStore) {
	t.Helper()
	if err := h.m.Release(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	m, err := New(Options{Kernel: h.k, Plugins: h.p, ModulesDir: h.dir, PinDir: h.pins, Store: store, Persist: true,
		Services: func() []events.Service { return h.services }, ServiceRanges: testRanges, SLA: testSLA(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
}

func TestStatefulRestart(t *testing.T) {
	store := &memStore{}
	h := newHarness(t, ModeTCX)
	h.m.opts.Store = store
	a := h.load(t, "counter", 10)
	if _, err := h.m.Load(LoadRequest{Name: "dropper", Priority: prio(20), Interfaces: []string{"eth9"}, Config: json.RawMessage(`{"x":1}`)}); err != nil {
		t.Fatal(err)
	}
	web, db := svc("app.ns.web.ns", 3), svc("app.ns.db.ns", 4)
	for _, s := range []events.Service{web, db} {
		if err := h.deploy(t, s); err != nil {
			t.Fatal(err)
		}
	}
	if len(store.saved) != 2 || store.saved[1].Config == nil || string(store.saved[1].Config) != `{"x":1}` {
		t.Fatalf("declared state: %+v", store.saved)
	}
	// The module saves state of its own through its routes, later.
	if err := h.m.insts[a.ID].mod.(*fakeModule).base.SaveState(json.RawMessage(`{"n":7}`)); err != nil {
		t.Fatal(err)
	}
	before := map[int][]uint32{3: h.k.programs(3, module.HookIngress), 4: h.k.programs(4, module.HookIngress), 9: h.k.programs(9, module.HookIngress)}

	// The daemon stops with persist: everything stays attached.
	h.restart(t, store)
	for idx, chain := range before {
		if got := h.k.programs(idx, module.HookIngress); !slices.Equal(got, chain) {
			t.Fatalf("after release, chain on %d = %v, want %v", idx, got, chain)
		}
	}
	// db went away while the daemon was down; web is re-adopted.
	h.services = []events.Service{web}
	n, err := h.m.Readopt()
	if err != nil || n != 2 {
		t.Fatalf("readopt: %d %v", n, err)
	}
	if err := h.m.HandleEvent(context.Background(), events.Event{Type: events.ServiceCreated, Service: web}); err != nil {
		t.Fatal(err)
	}
	// A program someone attached by hand to web's veth meanwhile.
	h.k.mu.Lock()
	h.k.chains[chainKey{3, module.HookIngress}] = append(h.k.chains[chainKey{3, module.HookIngress}], fakeEntry{prog: 999})
	h.k.mu.Unlock()
	drift := h.m.Reconcile()
	if len(drift) != 3 || !strings.Contains(drift[0], "oak4_egress") || !strings.Contains(drift[1], "oak4_ingress") ||
		drift[2] != "program 999 on oak3 ingress is not this daemon's (left alone)" {
		t.Fatalf("drift: %v", drift)
	}
	h.k.mu.Lock()
	hand := h.k.chains[chainKey{3, module.HookIngress}]
	h.k.chains[chainKey{3, module.HookIngress}] = hand[:len(hand)-1]
	h.k.mu.Unlock()
	// One program per hook throughout, each the new run's, in the same order.
	h.assertChain(t, 3, a.ID)
	h.assertChain(t, 9, "2")
	h.assertChain(t, 4)
	for idx := range before {
		if len(h.k.programs(idx, module.HookIngress)) != len(h.k.programs(idx, module.HookEgress)) {
			t.Fatalf("hooks disagree on %d", idx)
		}
	}
	fm := h.p.mods["counter"][len(h.p.mods["counter"])-1]
	if string(fm.base.State) != `{"n":7}` || !fm.base.Readopted {
		t.Fatalf("the re-created control plane got state %s, readopted %v", fm.base.State, fm.base.Readopted)
	}
	info, _ := h.m.Get(a.ID)
	if !info.Readopted || len(info.Drift) != 2 {
		t.Fatalf("info after the restart: %+v", info)
	}
	// A new load gets a fresh id; deleting everything leaves nothing.
	c := h.load(t, "other", 30)
	if c.ID != "3" {
		t.Fatalf("new instance id %s after the restart", c.ID)
	}
	if err := h.m.Close(); err != nil {
		t.Fatal(err)
	}
	if len(store.saved) != 0 {
		t.Fatalf("declared state after deleting everything: %+v", store.saved)
	}
	h.assertNothingLeft(t)
}

// Without persist a start removes what the earlier run pinned and clears
// the declared state.
func TestStartWithoutPersistForgets(t *testing.T) {
	store := &memStore{}
	h := newHarness(t, ModeTCX)
	h.m.opts.Store = store
	h.load(t, "counter", 10)
	if err := h.deploy(t, svc("app.ns.web.ns", 3)); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Release(); err != nil {
		t.Fatal(err)
	}
	m, err := New(Options{Kernel: h.k, Plugins: h.p, ModulesDir: h.dir, PinDir: h.pins, Store: store,
		Services: func() []events.Service { return nil }, Log: logrus.New()})
	if err != nil {
		t.Fatal(err)
	}
	if len(store.saved) != 0 || len(m.List()) != 0 {
		t.Fatalf("declared %+v, listed %+v", store.saved, m.List())
	}
}

func TestStrayPins(t *testing.T) {
	got := strayPins([]string{"oak4_ingress", "oak3_ingress", "oak3_egress", "eth9_ingress"}, []string{"oak3_ingress", "eth9_ingress", "oak3_egress"})
	if !slices.Equal(got, []string{"oak4_ingress"}) {
		t.Fatalf("%v", got)
	}
	if got := strayPins(nil, []string{"x"}); len(got) != 0 {
		t.Fatalf("%v", got)
	}
}

// A load whose declared state cannot be written does not run: a restart
// would not know it. Nothing stays attached, pinned or declared.
func TestLoadFailsWhenTheStateCannotBeSaved(t *testing.T) {
	store := &memStore{}
	h := newHarness(t, ModeTCX)
	h.m.opts.Store = store
	if err := h.deploy(t, svc("app.ns.web.ns", 3)); err != nil {
		t.Fatal(err)
	}
	keep := h.load(t, "counter", 10)
	store.fail = errors.New("disk full")
	if _, err := h.m.Load(LoadRequest{Name: "dropper"}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("load with a failing store: %v", err)
	}
	store.fail = nil
	h.assertChain(t, 3, keep.ID)
	if len(h.m.List()) != 1 || len(store.saved) != 1 || store.saved[0].ID != keep.ID {
		t.Fatalf("after the failed load: listed %d, declared %+v", len(h.m.List()), store.saved)
	}
	if pins, _ := h.k.Pins(h.pins); !slices.Equal(pins, []string{keep.ID}) {
		t.Fatalf("pins after the failed load: %v", pins)
	}
}
