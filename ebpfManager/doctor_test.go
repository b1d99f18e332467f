package ebpfmanager

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// healthyObserved is a node with two instances on one veth, everything in
// place: counter (1) before firewall (2).
func healthyObserved() Observed {
	inst := func(id, name string, in, eg uint32) ObservedInstance {
		return ObservedInstance{ID: id, Name: name, State: StateRunning,
			Programs: map[module.Hook]uint32{module.HookIngress: in, module.HookEgress: eg},
			Maps:     []string{"m"}, Targets: []string{"veth0"}, Attached: []string{"veth0"}}
	}
	dir := ObservedPinDir{Links: []string{"veth0_egress", "veth0_ingress"}, Maps: []string{"m"}}
	return Observed{Mode: ModeTCX, PinDir: "/sys/fs/bpf/nm", HasStore: true,
		Declared:  []Declared{{ID: "1", Name: "counter"}, {ID: "2", Name: "firewall"}},
		Instances: []ObservedInstance{inst("1", "counter", 11, 12), inst("2", "firewall", 21, 22)},
		Pins:      []string{"1", "2"},
		Dirs:      map[string]ObservedPinDir{"1": dir, "2": dir},
		Hooks: []ObservedHook{
			{Interface: "veth0", Ifindex: 5, Hook: module.HookIngress, Chain: []uint32{11, 21}},
			{Interface: "veth0", Ifindex: 5, Hook: module.HookEgress, Chain: []uint32{12, 22}},
		}}
}

func TestDiagnose(t *testing.T) {
	type want struct {
		kind, severity, subject string
		says                    []string
	}
	cases := []struct {
		name    string
		change  func(o *Observed)
		healthy bool
		want    []want // in report order
	}{
		{"healthy", func(*Observed) {}, true, nil},
		{"foreign at the head ends the chain", func(o *Observed) {
			o.Hooks[0].Chain = []uint32{99, 11, 21}
			o.Hooks[0].Programs = map[uint32]ProgramInfo{99: {ID: 99, Name: "intruder", Tag: "abcdef0123456789"}}
		}, false, []want{{ProblemForeign, SeverityError, "veth0 ingress", []string{`program 99 "intruder" (tag abcdef0123456789) at position 0`, "runs before our first program", "an accept or drop from it ends the chain, so our modules never see that traffic"}}}},
		{"foreign between ours ends nothing", func(o *Observed) {
			o.Hooks[1].Chain = []uint32{12, 98, 22}
			o.Hooks[1].Programs = map[uint32]ProgramInfo{98: {ID: 98, Name: "mid"}}
		}, true, []want{{ProblemForeign, SeverityWarning, "veth0 egress", []string{`program 98 "mid"`, "at position 1", "runs after our programs"}}}},
		{"foreign gone meanwhile", func(o *Observed) {
			o.Hooks[0].Chain = []uint32{97, 11, 21}
			o.Hooks[0].Programs = map[uint32]ProgramInfo{97: {ID: 97}}
		}, false, []want{{ProblemForeign, SeverityError, "veth0 ingress", []string{`program 97 "(gone, or nameless)"`}}}},
		{"our program detached", func(o *Observed) { o.Hooks[0].Chain = []uint32{11} }, false,
			[]want{{ProblemMissingAttachment, SeverityError, "veth0 ingress", []string{"instance 2 (firewall) should run on veth0 ingress but the kernel has not its program 21 there"}}}},
		{"not attached where it applies", func(o *Observed) { o.Instances[1].Targets = []string{"veth0", "veth1"} }, false,
			[]want{{ProblemMissingAttachment, SeverityError, "veth1", []string{"instance 2 (firewall) applies to veth1 but is not attached to it"}}}},
		{"chain unreadable", func(o *Observed) { o.Hooks[1].Err = "no such device" }, false,
			[]want{{ProblemMissingAttachment, SeverityError, "veth0 egress", []string{"cannot read the chain on veth0 egress: no such device"}}}},
		{"out of order", func(o *Observed) { o.Hooks[0].Chain = []uint32{21, 11} }, false,
			[]want{{ProblemOutOfOrder, SeverityError, "veth0 ingress", []string{"run in the order 2/firewall (program 21), 1/counter (program 11) but the chain order is 1/counter (program 11), 2/firewall (program 21)"}}}},
		{"stray instance directory", func(o *Observed) { o.Pins = append(o.Pins, "7") }, false,
			[]want{{ProblemStrayPin, SeverityError, "/sys/fs/bpf/nm/7", []string{"/sys/fs/bpf/nm/7 is pinned but no module instance owns it"}}}},
		{"stray link, map and other pins", func(o *Observed) {
			o.Dirs["1"] = ObservedPinDir{Links: []string{"veth0_egress", "veth0_ingress", "veth9_ingress"}, Maps: []string{"m", "old"}, Other: []string{"x"}}
		}, false, []want{
			{ProblemStrayPin, SeverityError, "/sys/fs/bpf/nm/1/links/veth9_ingress", []string{"instance 1 (counter) has no such attachment"}},
			{ProblemStrayPin, SeverityError, "/sys/fs/bpf/nm/1/maps/old", []string{"instance 1 (counter)'s data plane has no such map"}},
			{ProblemStrayPin, SeverityError, "/sys/fs/bpf/nm/1/x", []string{"instance 1 (counter) does not pin it"}},
		}},
		{"missing map and link pins", func(o *Observed) { o.Dirs["2"] = ObservedPinDir{Links: []string{"veth0_egress"}} }, false, []want{
			{ProblemMissingPin, SeverityError, "/sys/fs/bpf/nm/2/links/veth0_ingress", []string{"instance 2 (firewall): its link pin", "is missing", "with a gap"}},
			{ProblemMissingPin, SeverityError, "/sys/fs/bpf/nm/2/maps/m", []string{"its map pin", "the map would start empty"}},
		}},
		{"legacy mode pins no links", func(o *Observed) {
			o.Mode = ModeLegacy
			o.Dirs["1"], o.Dirs["2"] = ObservedPinDir{Maps: []string{"m"}}, ObservedPinDir{Maps: []string{"m"}}
		}, true, nil},
		{"declared but not running", func(o *Observed) { o.Declared = append(o.Declared, Declared{ID: "3", Name: "proxy"}) }, false,
			[]want{{ProblemStaleState, SeverityError, "instance 3", []string{"the declared state lists instance 3 (proxy), which does not run"}}}},
		{"running but not declared", func(o *Observed) { o.Declared = o.Declared[:1] }, false,
			[]want{{ProblemUndeclared, SeverityError, "instance 2", []string{"instance 2 (firewall) runs but the declared state lacks it"}}}},
		{"SLA instances are not declared", func(o *Observed) { o.Declared = o.Declared[:1]; o.Instances[1].SLA = true }, true, nil},
		{"no store, no state to compare", func(o *Observed) { o.HasStore, o.Declared = false, nil }, true, nil},
		{"failed", func(o *Observed) {
			o.Instances[0].State, o.Instances[0].Failure = StateFailed, "control plane panicked in Attach: boom"
		}, false,
			[]want{{ProblemFailed, SeverityError, "instance 1", []string{"instance 1 (counter) has failed: control plane panicked in Attach: boom"}}}},
		{"failed readopt: no data plane, its pins are its own", func(o *Observed) {
			o.Instances[0].State, o.Instances[0].Failure, o.Instances[0].Programs = StateFailed, "not taken back", nil
			o.Instances[0].Attached = nil
			o.Hooks[0].Chain, o.Hooks[1].Chain = []uint32{21}, []uint32{22}
		}, false, []want{{ProblemFailed, SeverityError, "instance 1", []string{"has failed: not taken back"}}}},
		{"kernel lacks a feature", func(o *Observed) {
			o.Features = []ObservedFeatures{{Module: "firewall", Missing: []Need{{Feature: "bpf_loop"}}}}
		}, false, []want{{ProblemKernelFeature, SeverityError, "module firewall", []string{"module firewall needs what this kernel lacks: bpf_loop"}}}},
		{"kernel lacks an optional feature", func(o *Observed) {
			o.Features = []ObservedFeatures{{Module: "proxy", Degraded: []Need{{Feature: FeatureAdjustRoomDecap, Optional: true}}, Inconclusive: []string{"btf"}}}
		}, true, []want{
			{ProblemKernelFeature, SeverityWarning, "module proxy", []string{"module proxy uses what this kernel lacks: adjust_room_decap"}},
			{ProblemKernelFeature, SeverityWarning, "module proxy", []string{"could not tell whether it has btf"}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := healthyObserved()
			c.change(&o)
			r := Diagnose(o)
			if r.Healthy != c.healthy {
				t.Errorf("healthy %v, want %v: %+v", r.Healthy, c.healthy, r.Problems)
			}
			if len(r.Problems) != len(c.want) {
				t.Fatalf("%d problems, want %d: %+v", len(r.Problems), len(c.want), r.Problems)
			}
			for i, w := range c.want {
				p := r.Problems[i]
				if p.Kind != w.kind || p.Severity != w.severity || p.Subject != w.subject {
					t.Errorf("problem %d: %s %s %q, want %s %s %q", i, p.Severity, p.Kind, p.Subject, w.severity, w.kind, w.subject)
				}
				for _, s := range w.says {
					if !strings.Contains(p.Message, s) {
						t.Errorf("problem %d says %q, want it to say %q", i, p.Message, s)
					}
				}
			}
		})
	}
}

func TestDiagnoseSummary(t *testing.T) {
	o := healthyObserved()
	o.Hooks[0].Chain = []uint32{99, 11, 21}
	o.Hooks[0].Programs = map[uint32]ProgramInfo{99: {ID: 99, Name: "x"}}
	r := Diagnose(o)
	want := Summary{Mode: ModeTCX, Instances: 2, Hooks: 2, Programs: 4, Foreign: 1, Pins: 6, Errors: 1, Declared: 2}
	if r.Summary != want {
		t.Fatalf("summary %+v, want %+v", r.Summary, want)
	}
	if f := r.Problems[0].Foreign; f == nil || f.ID != 99 || f.Position != 0 || !f.EndsChain || f.Interface != "veth0" || f.Hook != "ingress" {
		t.Fatalf("foreign: %+v", f)
	}
}

// The gather step, over the fake kernel: a healthy node, then a foreign
// program at the head of a veth, a detached program, a removed and a stray
// pin, a stale declared entry.
func TestDoctorGather(t *testing.T) {
	h := newHarness(t, ModeTCX)
	store := &memStore{}
	h.restart(t, store) // a manager with a Store
	if err := h.deploy(t, svc("a.b.c.d", 5)); err != nil {
		t.Fatal(err)
	}
	c := h.load(t, "counter", 10)
	h.load(t, "dropper", 20)
	if r := h.m.Doctor(); !r.Healthy || len(r.Problems) != 0 || r.Summary.Instances != 2 || r.Summary.Hooks != 2 || r.Summary.Programs != 4 {
		t.Fatalf("healthy node: %+v", r)
	}
	id := h.k.addForeign(5, module.HookIngress, 0, "intruder")
	r := h.m.Doctor()
	if r.Healthy || len(r.Problems) != 1 || r.Problems[0].Kind != ProblemForeign || r.Problems[0].Foreign.ID != id ||
		!strings.Contains(r.Problems[0].Message, `"intruder"`) {
		t.Fatalf("foreign program: %+v", r)
	}
	h.k.removeProgram(5, module.HookIngress, id)
	h.k.removeProgram(5, module.HookEgress, c.Attachments[1].ProgramID)
	linkPin := filepath.Join(h.pins, c.ID, "links", "oak5_ingress")
	h.k.mu.Lock()
	delete(h.k.linkPins, linkPin)
	h.k.mu.Unlock()
	if err := os.WriteFile(filepath.Join(h.pins, "stray"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_ = store.Save(append(store.saved, Declared{ID: "9", Name: "other"}))
	got := map[string]string{}
	for _, p := range h.m.Doctor().Problems {
		got[p.Kind] = p.Subject
	}
	want := map[string]string{ProblemMissingAttachment: "oak5 egress", ProblemMissingPin: linkPin,
		ProblemStrayPin: filepath.Join(h.pins, "stray"), ProblemStaleState: "instance 9"}
	if len(got) != len(want) {
		t.Fatalf("problems %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s about %q, want %q", k, got[k], v)
		}
	}
}

// GET /ebpf/doctor answers 200 whatever the health; GET /ebpf/{id} lists
// the foreign programs ahead of the instance, and Metrics those on every
// hook, scanned at most once a second.
func TestDoctorRouteAndForeign(t *testing.T) {
	h := newHarness(t, ModeTCX)
	if err := h.deploy(t, svc("a.b.c.d", 5)); err != nil {
		t.Fatal(err)
	}
	c := h.load(t, "counter", 10)
	d := h.load(t, "dropper", 20)
	now := time.Unix(1000, 0)
	h.m.foreign.now = func() time.Time { return now }
	if m := h.m.Metrics(); len(m.Foreign) != 0 {
		t.Fatalf("foreign before any: %+v", m.Foreign)
	}
	head := h.k.addForeign(5, module.HookIngress, 0, "head")
	mid := h.k.addForeign(5, module.HookIngress, 2, "mid") // after counter, before dropper
	rec := httptest.NewRecorder()
	h.router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ebpf/doctor", nil))
	var r Report
	if err := json.Unmarshal(rec.Body.Bytes(), &r); rec.Code != 200 || err != nil || r.Healthy || r.Summary.Foreign != 2 {
		t.Fatalf("GET /ebpf/doctor: %d %s", rec.Code, rec.Body)
	}
	ci, _ := h.m.Get(c.ID)
	di, _ := h.m.Get(d.ID)
	if len(ci.Foreign) != 1 || ci.Foreign[0].ID != head || ci.Foreign[0].Position != 0 || !ci.Foreign[0].EndsChain {
		t.Fatalf("counter's foreign: %+v", ci.Foreign)
	}
	if len(di.Foreign) != 2 || di.Foreign[1].ID != mid || di.Foreign[1].Position != 2 || di.Foreign[1].EndsChain || di.Foreign[1].Name != "mid" {
		t.Fatalf("dropper's foreign: %+v", di.Foreign)
	}
	if m := h.m.Metrics(); len(m.Foreign) != 0 {
		t.Fatalf("the cached scan was not served: %+v", m.Foreign)
	}
	now = now.Add(foreignTTL)
	m := h.m.Metrics()
	if len(m.Foreign) != 2 || m.Foreign[0].ID != head || !m.Foreign[0].EndsChain || m.Foreign[1].EndsChain || m.Foreign[0].Hook != module.HookIngress {
		t.Fatalf("metrics foreign: %+v", m.Foreign)
	}
}
