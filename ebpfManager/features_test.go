package ebpfmanager

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/events"
)

func TestMissing(t *testing.T) {
	loopIn := Need{Feature: "bpf_loop", ProgramType: "SchedCLS", By: []string{"nm_ingress"}}
	loopEg := Need{Feature: "bpf_loop", ProgramType: "SchedCLS", By: []string{"nm_egress"}}
	loopXDP := Need{Feature: "bpf_loop", ProgramType: "XDP", By: []string{"x"}}
	lpm := Need{Feature: "map_lpm_trie", By: []string{"src4", "dst4"}}
	decap := Need{Feature: FeatureAdjustRoomDecap, By: []string{"nm_ingress"}, Optional: true}
	yes, no, unsure := Probe{Have: true}, Probe{}, Probe{Err: errors.New("cannot tell")}
	cases := []struct {
		name   string
		needs  []Need
		probes []Probe
		want   []Need
	}{
		{"nothing needed", nil, nil, []Need{}},
		{"all there", []Need{loopIn, lpm}, []Probe{yes, yes}, []Need{}},
		{"one missing", []Need{loopIn, lpm}, []Probe{yes, no}, []Need{{Feature: "map_lpm_trie", By: []string{"dst4", "src4"}}}},
		{"merged by feature and type, sorted", []Need{lpm, loopEg, loopXDP, loopIn}, []Probe{no, no, no, no}, []Need{
			{Feature: "bpf_loop", ProgramType: "SchedCLS", By: []string{"nm_egress", "nm_ingress"}},
			{Feature: "bpf_loop", ProgramType: "XDP", By: []string{"x"}},
			{Feature: "map_lpm_trie", By: []string{"dst4", "src4"}},
		}},
		{"inconclusive is not held against it", []Need{loopIn}, []Probe{unsure}, []Need{}},
		{"unanswered is not held against it", []Need{loopIn, lpm}, []Probe{yes}, []Need{}},
		{"optional is not missing", []Need{decap, loopIn}, []Probe{no, yes}, []Need{}},
	}
	for _, tc := range cases {
		got := Missing(tc.needs, tc.probes)
		if len(got) != len(tc.want) {
			t.Errorf("%s: missing %+v, want %+v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i].Feature != tc.want[i].Feature || got[i].ProgramType != tc.want[i].ProgramType || !slices.Equal(got[i].By, tc.want[i].By) {
				t.Errorf("%s: missing[%d] = %+v, want %+v", tc.name, i, got[i], tc.want[i])
			}
		}
	}
	// Degraded is the optional part.
	for _, tc := range []struct {
		probes []Probe
		want   []string
	}{{[]Probe{no, no}, []string{FeatureAdjustRoomDecap}}, {[]Probe{yes, no}, nil}, {[]Probe{unsure, no}, nil}} {
		if got := features(Degraded([]Need{decap, loopIn}, tc.probes)); !slices.Equal(got, tc.want) {
			t.Errorf("degraded with %+v: %v, want %v", tc.probes, got, tc.want)
		}
	}
	// The caller's needs are not changed by the merge.
	if !slices.Equal(lpm.By, []string{"src4", "dst4"}) {
		t.Errorf("Missing sorted its input: %v", lpm.By)
	}
}

func TestMissingFeaturesError(t *testing.T) {
	err := error(&MissingFeaturesError{Module: "firewall", Missing: []Need{
		{Feature: "bpf_loop", ProgramType: "SchedCLS", By: []string{"nm_egress", "nm_ingress"}},
		{Feature: "bpf_loop", ProgramType: "XDP"},
		{Feature: "map_lpm_trie", By: []string{"src4"}},
	}})
	if !errors.Is(err, errdefs.ErrUnprocessable) || errdefs.HTTPStatus(err) != http.StatusUnprocessableEntity {
		t.Fatalf("class %v, status %d: want unprocessable, 422", err, errdefs.HTTPStatus(err))
	}
	want := `cannot be processed: module "firewall" needs what this kernel lacks: bpf_loop (nm_egress, nm_ingress); bpf_loop in XDP programs; map_lpm_trie (src4)`
	if err.Error() != want {
		t.Errorf("message\n %s\nwant\n %s", err, want)
	}
	var mf *MissingFeaturesError
	if !errors.As(err, &mf) || !slices.Equal(mf.Features(), []string{"bpf_loop", "map_lpm_trie"}) {
		t.Errorf("features %v", mf.Features())
	}
}

// needLoop makes the harness's module name need bpf_loop and LPM tries on a
// kernel without bpf_loop.
func (h *harness) needLoop(name string) {
	h.k.mu.Lock()
	defer h.k.mu.Unlock()
	h.k.needs[h.obj(name)] = []Need{
		{Feature: "bpf_loop", ProgramType: "SchedCLS", By: []string{"nm_egress", "nm_ingress"}},
		{Feature: "map_lpm_trie", By: []string{"src4"}},
	}
	h.k.lacks["bpf_loop"] = true
}

// A module that needs bpf_loop on a kernel without it is refused — 422
// naming bpf_loop — before its control plane is opened: nothing attached,
// pinned or listed. A module that does not need it loads on the same
// kernel, and the refused one loads once the kernel has it.
func TestLoadRefusedForMissingFeature(t *testing.T) {
	for _, mode := range []Mode{ModeTCX, ModeLegacy} {
		t.Run(string(mode), func(t *testing.T) {
			h := newHarness(t, mode)
			if err := h.deploy(t, svc("a.b.c.d", 2)); err != nil {
				t.Fatal(err)
			}
			h.needLoop("counter")
			_, err := h.m.Load(LoadRequest{Name: "counter", Priority: prio(10)})
			var mf *MissingFeaturesError
			if !errors.Is(err, errdefs.ErrUnprocessable) || !errors.As(err, &mf) || !slices.Equal(mf.Features(), []string{"bpf_loop"}) {
				t.Fatalf("load: %v, want a MissingFeaturesError naming bpf_loop only", err)
			}
			if len(h.p.mods["counter"]) != 0 {
				t.Fatal("the control plane was created for a refused module")
			}
			h.assertChain(t, 2)
			h.assertNothingLeft(t)

			rec := httptest.NewRecorder()
			h.router.ServeHTTP(rec, httptest.NewRequest("POST", "/ebpf", strings.NewReader(`{"name": "counter"}`)))
			if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), "bpf_loop") {
				t.Fatalf("POST /ebpf: %d %s, want 422 naming bpf_loop", rec.Code, rec.Body)
			}
			h.assertNothingLeft(t)

			other := h.load(t, "dropper", 20)
			h.assertChain(t, 2, other.ID)
			h.k.mu.Lock()
			h.k.lacks["bpf_loop"] = false
			h.k.mu.Unlock()
			counter := h.load(t, "counter", 10)
			h.assertChain(t, 2, counter.ID, other.ID)
		})
	}
}

// A probe that cannot tell is not held against the module: the kernel's own
// load decides.
func TestInconclusiveProbeDoesNotRefuse(t *testing.T) {
	h := newHarness(t, ModeTCX)
	h.needLoop("counter")
	h.k.mu.Lock()
	h.k.unsure["bpf_loop"] = true
	h.k.mu.Unlock()
	h.load(t, "counter", 10)
}

// An object the kernel side cannot read is refused as unprocessable, naming it.
func TestUnreadableObjectRefused(t *testing.T) {
	h := newHarness(t, ModeTCX)
	h.k.badObj[h.obj("counter")] = errors.New("not an ELF file")
	_, err := h.m.Load(LoadRequest{Name: "counter"})
	if !errors.Is(err, errdefs.ErrUnprocessable) || !strings.Contains(err.Error(), "counter.o: not an ELF file") {
		t.Fatalf("load: %v", err)
	}
	h.assertNothingLeft(t)
}

// A deploy whose SLA asks for a module the kernel cannot run is refused
// before anything is made; one whose modules it can run is accepted.
func TestAcceptModulesRefusesMissingFeature(t *testing.T) {
	h := newHarness(t, ModeTCX)
	h.needLoop("counter")
	err := h.m.AcceptModules([]events.Module{{Name: "dropper"}, {Name: "counter"}})
	var mf *MissingFeaturesError
	if !errors.As(err, &mf) || errdefs.HTTPStatus(err) != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "ebpfModules[1]") {
		t.Fatalf("AcceptModules: %v, want a 422 for ebpfModules[1]", err)
	}
	if err := h.m.AcceptModules([]events.Module{{Name: "dropper"}}); err != nil {
		t.Fatal(err)
	}
	h.assertNothingLeft(t)
}

// An update to a rebuilt module that now needs what the kernel lacks is
// refused, and the running version stays as it was.
func TestUpdateRefusedForMissingFeature(t *testing.T) {
	h := newHarness(t, ModeTCX)
	if err := h.deploy(t, svc("a.b.c.d", 2)); err != nil {
		t.Fatal(err)
	}
	in := h.load(t, "counter", 10)
	h.needLoop("counter")
	_, err := h.m.Update(in.ID, UpdateRequest{})
	var mf *MissingFeaturesError
	if !errors.As(err, &mf) || !slices.Equal(mf.Features(), []string{"bpf_loop"}) {
		t.Fatalf("update: %v, want a MissingFeaturesError naming bpf_loop", err)
	}
	h.assertChain(t, 2, in.ID)
	if got, err := h.m.Get(in.ID); err != nil || got.State != StateRunning {
		t.Fatalf("after the refused update: %+v %v", got, err)
	}
	if n := len(h.p.mods["counter"]); n != 1 {
		t.Fatalf("%d control planes made, want the first one only", n)
	}
	if calls := h.p.mods["counter"][0].calls; slices.Contains(calls, "Close") {
		t.Fatalf("the running version was closed: %v", calls)
	}
}

// A module that needs an optional feature the kernel lacks (the decap flags
// of bpf_skb_adjust_room, which a data plane may fall back from) loads, and
// the daemon warns once, naming the feature.
func TestDegradedFeatureLoadsWithWarning(t *testing.T) {
	h := newHarness(t, ModeTCX)
	log, hook := logtest.NewNullLogger()
	h.m.opts.Log = log
	h.k.mu.Lock()
	h.k.needs[h.obj("counter")] = []Need{{Feature: FeatureAdjustRoomDecap, By: []string{"nm_ingress"}, Optional: true}}
	h.k.lacks[FeatureAdjustRoomDecap] = true
	h.k.mu.Unlock()
	h.load(t, "counter", 10)
	var warned []*logrus.Entry
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel {
			warned = append(warned, e)
		}
	}
	if len(warned) != 1 || !slices.Equal(warned[0].Data["lacking"].([]string), []string{FeatureAdjustRoomDecap}) || warned[0].Data["module"] != "counter" {
		t.Fatalf("warnings %v, want one naming adjust_room_decap for counter", warned)
	}
	hook.Reset()
	h.load(t, "dropper", 20) // needs nothing: no warning
	if len(hook.AllEntries()) != 1 || hook.LastEntry().Level != logrus.InfoLevel {
		t.Fatalf("loading a module that needs nothing logged %v", hook.AllEntries())
	}
}
