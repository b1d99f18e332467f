package ebpfmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/events"
)

type harness struct {
	m        *Manager
	k        *fakeKernel
	p        *fakePlugins
	dir      string
	pins     string
	services []events.Service
	router   *mux.Router
}

func newHarness(t testing.TB, mode Mode) *harness {
	t.Helper()
	h := &harness{k: newFakeKernel(mode), p: newFakePlugins(), dir: t.TempDir(), pins: filepath.Join(t.TempDir(), "pins")}
	for _, name := range []string{"counter", "dropper", "other"} {
		h.install(t, name, true, true)
	}
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	var err error
	h.m, err = New(Options{Kernel: h.k, Plugins: h.p, ModulesDir: h.dir, PinDir: h.pins,
		Services: func() []events.Service { return h.services }, ServiceRanges: testRanges, Tunnel: testTunnel, SLA: testSLA(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	h.router = mux.NewRouter()
	h.m.Register(h.router)
	return h
}

func (h *harness) install(t testing.TB, name string, so, obj bool) {
	t.Helper()
	d := filepath.Join(h.dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if so {
		_ = os.WriteFile(filepath.Join(d, name+".so"), nil, 0o644)
	}
	if obj {
		_ = os.WriteFile(filepath.Join(d, name+".o"), nil, 0o644)
	}
}

func (h *harness) obj(name string) string { return filepath.Join(h.dir, name, name+".o") }
func (h *harness) so(name string) string  { return filepath.Join(h.dir, name, name+".so") }

func svc(name string, idx int) events.Service {
	return events.Service{ServiceName: name, Instance: 0, HostVeth: fmt.Sprintf("oak%d", idx), HostIfindex: idx,
		IPv4: netip.MustParseAddr(fmt.Sprintf("10.18.0.%d", idx))}
}

func (h *harness) deploy(t *testing.T, s events.Service) error {
	t.Helper()
	err := h.m.HandleEvent(context.Background(), events.Event{Type: events.ServiceCreated, Service: s})
	if err == nil {
		h.services = append(h.services, s)
	}
	return err
}

func (h *harness) undeploy(t *testing.T, s events.Service) {
	t.Helper()
	if err := h.m.HandleEvent(context.Background(), events.Event{Type: events.ServiceRemoved, Service: s}); err != nil {
		t.Fatal(err)
	}
	h.services = slices.DeleteFunc(h.services, func(x events.Service) bool { return x.HostVeth == s.HostVeth })
}

func prio(p int) *int { return &p }

func (h *harness) load(t testing.TB, name string, p int) Info {
	t.Helper()
	req := LoadRequest{Name: name}
	if p > 0 {
		req.Priority = prio(p)
	}
	info, err := h.m.Load(req)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return info
}

// chainNames maps a hook's chain on an interface to instance ids.
func (h *harness) chainIDs(ifindex int, hook module.Hook) []string {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	var out []string
	for _, prog := range h.k.programs(ifindex, hook) {
		name := fmt.Sprint(prog)
		for _, in := range h.m.insts {
			if id, ok := in.dp.ProgramID(hook); ok && id == prog {
				name = in.id
			}
		}
		out = append(out, name)
	}
	return out
}

func (h *harness) assertChain(t *testing.T, ifindex int, want ...string) {
	t.Helper()
	for _, hook := range module.Hooks {
		if got := h.chainIDs(ifindex, hook); !slices.Equal(got, want) {
			t.Fatalf("chain on %d/%s = %v, want %v", ifindex, hook, got, want)
		}
	}
}

func (h *harness) assertNothingLeft(t *testing.T) {
	t.Helper()
	if l := h.k.leftovers(); len(l) != 0 {
		t.Fatalf("kernel leftovers: %v", l)
	}
	if entries, _ := os.ReadDir(h.pins); len(entries) != 0 {
		t.Fatalf("pin dir not empty: %v", entries)
	}
	if n := len(h.m.List()); n != 0 {
		t.Fatalf("%d instances left", n)
	}
}

func TestChainFollowsPriorityNotLoadOrder(t *testing.T) {
	for _, mode := range []Mode{ModeTCX, ModeLegacy} {
		t.Run(string(mode), func(t *testing.T) {
			h := newHarness(t, mode)
			if err := h.deploy(t, svc("a.b.c.d", 2)); err != nil {
				t.Fatal(err)
			}
			a := h.load(t, "counter", 20)
			b := h.load(t, "dropper", 10)
			c := h.load(t, "other", 15)
			d := h.load(t, "counter", 10) // ties with b, created later: after it
			h.assertChain(t, 2, b.ID, d.ID, c.ID, a.ID)

			// A service deployed later gets every instance, in the same order.
			if err := h.deploy(t, svc("a.b.c.e", 3)); err != nil {
				t.Fatal(err)
			}
			h.assertChain(t, 3, b.ID, d.ID, c.ID, a.ID)

			// Deleting from the middle keeps the others' order; new ones still fit.
			if err := h.m.Delete(c.ID); err != nil {
				t.Fatal(err)
			}
			h.assertChain(t, 2, b.ID, d.ID, a.ID)
			e := h.load(t, "other", 12)
			h.assertChain(t, 2, b.ID, d.ID, e.ID, a.ID)
			h.assertChain(t, 3, b.ID, d.ID, e.ID, a.ID)

			h.undeploy(t, svc("a.b.c.d", 2))
			h.assertChain(t, 2)
			if err := h.m.DeleteAll(); err != nil {
				t.Fatal(err)
			}
			h.undeploy(t, svc("a.b.c.e", 3))
			h.assertNothingLeft(t)
		})
	}
}

var testRanges = []netip.Prefix{netip.MustParsePrefix("10.30.0.0/16"), netip.MustParsePrefix("fdff:2000::/64")}

var testTunnel = netip.MustParseAddrPort("192.168.77.1:50103")

// Modules are told the node's service ranges and its tunnel end.
func TestModulesGetTheServiceRanges(t *testing.T) {
	h := newHarness(t, ModeTCX)
	h.load(t, "counter", 10)
	got := h.p.mods["counter"][0].ranges
	if len(got) != 2 || got[0] != testRanges[0] || got[1] != testRanges[1] {
		t.Fatalf("the module got service ranges %v, want %v", got, testRanges)
	}
	if tun := h.p.mods["counter"][0].base.Tunnel; tun != testTunnel {
		t.Fatalf("the module got tunnel %v, want %v", tun, testTunnel)
	}
}

func TestDefaultPriorityGoesLast(t *testing.T) {
	h := newHarness(t, ModeTCX)
	_ = h.deploy(t, svc("a.b.c.d", 2))
	a := h.load(t, "counter", 50)
	b := h.load(t, "dropper", 0)
	if b.Priority != 51 {
		t.Fatalf("default priority %d, want 51", b.Priority)
	}
	h.assertChain(t, 2, a.ID, b.ID)
}

func TestControlPlaneHearsAttachAndDetach(t *testing.T) {
	h := newHarness(t, ModeTCX)
	_ = h.deploy(t, svc("a.b.c.d", 2))
	info := h.load(t, "counter", 0)
	if len(info.Attachments) != 2 || info.Attachments[0].Direction != "egress" || info.Attachments[0].Hook != "ingress" || info.Attachments[0].Service != "a.b.c.d/0" {
		t.Fatalf("attachments: %+v", info.Attachments)
	}
	_ = h.deploy(t, svc("a.b.c.e", 3))
	h.undeploy(t, svc("a.b.c.d", 2))
	if err := h.m.Delete(info.ID); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(h.p.mods["counter"][0].calls, ",")
	if got != "Attach oak2,Attach oak3,Detach oak2,Detach oak3,Close" {
		t.Fatalf("calls: %s", got)
	}
	h.undeploy(t, svc("a.b.c.e", 3))
	h.assertNothingLeft(t)
}

func TestScopedInstances(t *testing.T) {
	h := newHarness(t, ModeTCX)
	_ = h.deploy(t, svc("a.b.c.d", 2))
	_ = h.deploy(t, svc("a.b.c.e", 3))
	only, err := h.m.Load(LoadRequest{Name: "counter", Services: []string{"a.b.c.e"}})
	if err != nil {
		t.Fatal(err)
	}
	host, err := h.m.Load(LoadRequest{Name: "dropper", Interfaces: []string{"eth9"}})
	if err != nil {
		t.Fatal(err)
	}
	h.assertChain(t, 2)
	h.assertChain(t, 3, only.ID)
	h.assertChain(t, 9, host.ID)
	if got := h.p.mods["dropper"][0].hostIfs; !slices.Equal(got, []string{"eth9"}) {
		t.Fatalf("the module was told host interfaces %v, want [eth9]", got)
	}
	_ = h.deploy(t, svc("a.b.c.f", 4))
	h.assertChain(t, 4)
	_ = h.m.DeleteAll()
	for _, s := range slices.Clone(h.services) {
		h.undeploy(t, s)
	}
	h.assertNothingLeft(t)
}

func TestLoadRefusalsLeaveNothing(t *testing.T) {
	cases := []struct {
		name  string
		setup func(h *harness)
		req   LoadRequest
		want  error
		text  string
	}{
		{"path traversal", nil, LoadRequest{Name: "../counter"}, errdefs.ErrInvalid, "must match"},
		{"upper case", nil, LoadRequest{Name: "A"}, errdefs.ErrInvalid, "must match"},
		{"empty name", nil, LoadRequest{Name: ""}, errdefs.ErrInvalid, "must match"},
		{"unknown module", nil, LoadRequest{Name: "nosuch"}, errdefs.ErrNotFound, "not installed"},
		{"missing .o", func(h *harness) { _ = os.Remove(h.obj("counter")) }, LoadRequest{Name: "counter"}, errdefs.ErrUnprocessable, "lacks counter.o"},
		{"plugin mismatch", func(h *harness) {
			h.p.openErr[h.so("counter")] = errors.New("plugin was built with a different version of package runtime")
		}, LoadRequest{Name: "counter"}, errdefs.ErrUnprocessable, "different version of package runtime"},
		{"verifier rejection", func(h *harness) {
			h.k.failLoad[h.obj("counter")] = fmt.Errorf("%w: verifier: invalid mem access 'scalar'", errdefs.ErrUnprocessable)
		}, LoadRequest{Name: "counter"}, errdefs.ErrUnprocessable, "invalid mem access"},
		{"no entry points", func(h *harness) { h.k.objects[h.obj("counter")] = nil }, LoadRequest{Name: "counter"}, errdefs.ErrUnprocessable, "neither nm_ingress nor nm_egress"},
		{"New fails", func(h *harness) { h.p.newErr["counter"] = errors.New("cannot start") }, LoadRequest{Name: "counter"}, errdefs.ErrUnprocessable, "cannot start"},
		{"bad config per module", func(h *harness) {
			h.p.newErr["counter"] = fmt.Errorf("%w: maxInterfaces must be positive", module.ErrInvalidConfig)
		}, LoadRequest{Name: "counter"}, errdefs.ErrInvalid, "maxInterfaces"},
		{"New panics", func(h *harness) { h.p.panicOn["counter"] = "New" }, LoadRequest{Name: "counter"}, errdefs.ErrUnprocessable, "panicked in New"},
		{"Attach fails", func(h *harness) { h.p.failOn["counter"] = "Attach" }, LoadRequest{Name: "counter"}, errdefs.ErrUnprocessable, "refuses Attach"},
		{"config not an object", nil, LoadRequest{Name: "counter", Config: json.RawMessage(`[1]`)}, errdefs.ErrInvalid, "JSON object"},
		{"priority too high", nil, LoadRequest{Name: "counter", Priority: prio(1001)}, errdefs.ErrInvalid, "priority"},
		{"priority zero", nil, LoadRequest{Name: "counter", Priority: prio(0)}, errdefs.ErrInvalid, "priority"},
		{"unknown interface", nil, LoadRequest{Name: "counter", Interfaces: []string{"nosuch0"}}, errdefs.ErrInvalid, "nosuch0"},
		{"bad service selector", nil, LoadRequest{Name: "counter", Services: []string{"web"}}, errdefs.ErrInvalid, "four dot-separated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, ModeTCX)
			_ = h.deploy(t, svc("a.b.c.d", 2))
			_ = h.deploy(t, svc("a.b.c.e", 3))
			if c.setup != nil {
				c.setup(h)
			}
			_, err := h.m.Load(c.req)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("got %v, want %v containing %q", err, c.want, c.text)
			}
			for _, s := range slices.Clone(h.services) {
				h.undeploy(t, s)
			}
			h.assertNothingLeft(t)
			// The route set is unchanged: no half-registered instance.
			rec := httptest.NewRecorder()
			h.router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ebpf/1/state", nil))
			if rec.Code != http.StatusNotFound {
				t.Fatalf("sub-route of a failed load answers %d", rec.Code)
			}
		})
	}
}

func TestFailingServiceAttachUndoesThatService(t *testing.T) {
	h := newHarness(t, ModeTCX)
	a := h.load(t, "counter", 10)
	b := h.load(t, "dropper", 20)
	h.p.mods["dropper"][0].failOn = "Attach"
	err := h.deploy(t, svc("a.b.c.d", 2))
	if !errors.Is(err, errdefs.ErrUnprocessable) {
		t.Fatalf("deploy: %v", err)
	}
	h.assertChain(t, 2)
	if calls := strings.Join(h.p.mods["counter"][0].calls, ","); calls != "Attach oak2,Detach oak2" {
		t.Fatalf("first module not told to undo: %s", calls)
	}
	h.p.mods["dropper"][0].failOn = ""
	if err := h.deploy(t, svc("a.b.c.d", 2)); err != nil {
		t.Fatal(err)
	}
	h.assertChain(t, 2, a.ID, b.ID)
}

func TestPanickingControlPlaneIsContained(t *testing.T) {
	h := newHarness(t, ModeTCX)
	_ = h.deploy(t, svc("a.b.c.d", 2))
	bad := h.load(t, "dropper", 10)
	good := h.load(t, "counter", 20)
	h.p.mods["dropper"][0].panicOn = "Attach"

	// A panic during a deploy fails that deploy and marks the instance failed...
	if err := h.deploy(t, svc("a.b.c.e", 3)); err == nil || !strings.Contains(err.Error(), "panicked in Attach") {
		t.Fatalf("deploy: %v", err)
	}
	info, _ := h.m.Get(bad.ID)
	if info.State != StateFailed || !strings.Contains(info.Error, "panicked in Attach") {
		t.Fatalf("instance after panic: %+v", info)
	}
	// ...and later deploys go on without it.
	if err := h.deploy(t, svc("a.b.c.e", 3)); err != nil {
		t.Fatal(err)
	}
	h.assertChain(t, 3, good.ID)
	h.assertChain(t, 2, bad.ID, good.ID) // its data plane stays where it was until deleted

	// A panicking handler answers 500 and fails that instance only.
	h.p.mods["counter"][0].panicOn = "handler"
	rec := httptest.NewRecorder()
	h.router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ebpf/"+good.ID+"/state", nil))
	if rec.Code != 500 {
		t.Fatalf("panicking handler: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ebpf/"+good.ID+"/state", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "failed") {
		t.Fatalf("failed instance's route: %d %s", rec.Code, rec.Body)
	}
	// Both can still be deleted, leaving nothing.
	if err := h.m.DeleteAll(); err != nil {
		t.Fatal(err)
	}
	for _, s := range slices.Clone(h.services) {
		h.undeploy(t, s)
	}
	h.assertNothingLeft(t)
}

func TestStaleChainIsReadAgain(t *testing.T) {
	h := newHarness(t, ModeTCX)
	_ = h.deploy(t, svc("a.b.c.d", 2))
	a := h.load(t, "counter", 10)
	h.k.bumpOnce = true
	b := h.load(t, "dropper", 5)
	if h.k.bumped != 1 {
		t.Fatal("the fake did not simulate a concurrent change")
	}
	h.assertChain(t, 2, b.ID, a.ID)
}

func TestRoutes(t *testing.T) {
	h := newHarness(t, ModeTCX)
	_ = h.deploy(t, svc("a.b.c.d", 2))
	do := func(method, path, body string) (int, string) {
		rec := httptest.NewRecorder()
		h.router.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		return rec.Code, rec.Body.String()
	}
	code, body := do("POST", "/ebpf", `{"name": "counter", "priority": 7, "config": {"x": 1}}`)
	var info Info
	if code != 200 || json.Unmarshal([]byte(body), &info) != nil || info.ID == "" || info.Priority != 7 || info.Mode != ModeTCX || string(info.Config) != `{"x":1}` {
		t.Fatalf("POST /ebpf: %d %s", code, body)
	}
	if code, body := do("GET", "/ebpf/"+info.ID+"/state", ""); code != 200 || body != `{"attached": 1}` {
		t.Fatalf("module route: %d %s", code, body)
	}
	if code, body := do("GET", "/ebpf/"+info.ID+"/nope", ""); code != 404 || !strings.Contains(body, "no route") {
		t.Fatalf("unknown module route: %d %s", code, body)
	}
	if code, body := do("GET", "/ebpf", ""); code != 200 || !strings.Contains(body, `"name":"counter"`) {
		t.Fatalf("GET /ebpf: %d %s", code, body)
	}
	if code, _ := do("GET", "/ebpf/"+info.ID, ""); code != 200 {
		t.Fatalf("GET /ebpf/id: %d", code)
	}
	for _, c := range []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/ebpf", `{"name": `, 400},
		{"POST", "/ebpf", `{"name": "../x"}`, 400},
		{"POST", "/ebpf", `{"name": "nosuch"}`, 404},
		{"POST", "/ebpf", `{"name": "counter", "priority": "high"}`, 400},
		{"GET", "/ebpf/99", "", 404},
		{"DELETE", "/ebpf/99", "", 404},
		{"GET", "/ebpf/99/state", "", 404},
	} {
		if code, body := do(c.method, c.path, c.body); code != c.code || !strings.Contains(body, `"error"`) {
			t.Errorf("%s %s %s: %d %s, want %d", c.method, c.path, c.body, code, body, c.code)
		}
	}
	if code, _ := do("DELETE", "/ebpf/"+info.ID, ""); code != 200 {
		t.Fatalf("DELETE: %d", code)
	}
	if code, _ := do("GET", "/ebpf/"+info.ID+"/state", ""); code != 404 {
		t.Fatalf("route of a deleted instance: %d", code)
	}
	do("POST", "/ebpf", `{"name": "counter"}`)
	if code, body := do("DELETE", "/ebpf", ""); code != 200 || body != "[]\n" {
		t.Fatalf("DELETE /ebpf: %d %s", code, body)
	}
	h.undeploy(t, svc("a.b.c.d", 2))
	h.assertNothingLeft(t)
}

func TestStalePinsAreRemovedAtStart(t *testing.T) {
	pins := filepath.Join(t.TempDir(), "pins")
	_ = os.MkdirAll(filepath.Join(pins, "7", "maps"), 0o700)
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	if _, err := New(Options{Kernel: newFakeKernel(ModeTCX), Plugins: newFakePlugins(), PinDir: pins, Services: func() []events.Service { return nil }, Log: log}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(pins); len(entries) != 0 {
		t.Fatalf("stale pins kept: %v", entries)
	}
}
