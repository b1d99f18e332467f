package ebpfmanager

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/events"
)

func withSLA(s events.Service, inst int, mods ...events.Module) events.Service {
	s.Instance = inst
	s.Modules = mods
	return s
}

func TestSLAModulesFollowTheirServices(t *testing.T) {
	h := newHarness(t, ModeTCX)
	global := h.load(t, "counter", 5)
	drop := events.Module{Name: "dropper", Config: json.RawMessage(`{"tos": 32}`)}
	s1 := withSLA(svc("a.b.c.d", 2), 0, drop)
	s2 := withSLA(svc("a.b.c.d", 3), 1, events.Module{Name: "dropper", Config: json.RawMessage(`{ "tos":32 }`)}) // same config, other spelling
	s3 := withSLA(svc("a.b.c.e", 4), 0, drop)
	for _, s := range []events.Service{s1, s2, s3} {
		if err := h.deploy(t, s); err != nil {
			t.Fatal(err)
		}
	}
	list := h.m.List()
	if len(list) != 3 {
		t.Fatalf("want the global instance and one SLA instance per service, got %+v", list)
	}
	slaD, slaE := list[1], list[2]
	if !slaD.SLA || slaD.References != 2 || len(slaD.Services) != 1 || slaD.Services[0] != "a.b.c.d" || slaE.References != 1 {
		t.Fatalf("SLA instances: %+v %+v", slaD, slaE)
	}
	h.assertChain(t, 2, global.ID, slaD.ID)
	h.assertChain(t, 3, global.ID, slaD.ID)
	h.assertChain(t, 4, global.ID, slaE.ID)

	h.undeploy(t, s1)
	if info, err := h.m.Get(slaD.ID); err != nil || info.References != 1 {
		t.Fatalf("after the first of two services went: %+v %v", info, err)
	}
	h.undeploy(t, s2)
	if _, err := h.m.Get(slaD.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("SLA instance outlived its last service: %v", err)
	}
	h.undeploy(t, s3)
	if err := h.m.Delete(global.ID); err != nil {
		t.Fatal(err)
	}
	h.assertNothingLeft(t)
}

func TestSLAFailureLeavesNothing(t *testing.T) {
	h := newHarness(t, ModeTCX)
	h.p.newErr["dropper"] = errors.New("cannot start")
	s := withSLA(svc("a.b.c.d", 2), 0, events.Module{Name: "counter"}, events.Module{Name: "dropper"})
	if err := h.deploy(t, s); !errors.Is(err, errdefs.ErrUnprocessable) {
		t.Fatalf("deploy: %v", err)
	}
	h.assertNothingLeft(t)
	h.assertChain(t, 2)
}

func TestAcceptModules(t *testing.T) {
	h := newHarness(t, ModeTCX)
	cases := []struct {
		mods []events.Module
		want error
	}{
		{[]events.Module{{Name: "counter"}, {Name: "dropper", Config: json.RawMessage(`{"tos": 1}`)}}, nil},
		{[]events.Module{{Name: "../x"}}, errdefs.ErrInvalid},
		{[]events.Module{{Name: "nosuch"}}, errdefs.ErrNotFound},
		{[]events.Module{{Name: "counter", Config: json.RawMessage(`[1]`)}}, errdefs.ErrInvalid},
	}
	for _, c := range cases {
		err := h.m.AcceptModules(c.mods)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("AcceptModules(%+v) = %v, want %v", c.mods, err, c.want)
		}
	}
	if entries, _ := os.ReadDir(h.pins); len(entries) != 0 {
		t.Fatal("AcceptModules loaded something")
	}
}

// testSLA is the harness's policy: the test modules allowed, dropper's
// "secret" key the operator's.
func testSLA() SLAPolicy {
	return SLAPolicy{Modules: map[string]SLAModule{"counter": {}, "dropper": {ForbiddenKeys: []string{"secret"}}, "other": {}},
		MaxInstances: 8, MaxMapBytes: 1 << 20}
}

func TestSLAPolicyDecisions(t *testing.T) {
	p := testSLA()
	cases := []struct {
		name string
		err  error
		want string // "" for allowed
	}{
		{"allowed", p.permits(events.Module{Name: "dropper", Config: json.RawMessage(`{"tos": 1}`)}), ""},
		{"allowed, no config", p.permits(events.Module{Name: "counter"}), ""},
		{"not allowed", p.permits(events.Module{Name: "proxy"}), `module "proxy" is not allowed for tenants (sla.modules)`},
		{"forbidden key", p.permits(events.Module{Name: "dropper", Config: json.RawMessage(`{"tos": 1, "secret": 2}`)}),
			`config key "secret" of module "dropper" is the operator's (sla.modules.dropper.forbiddenKeys)`},
		{"forbidden key of another module is fine", p.permits(events.Module{Name: "counter", Config: json.RawMessage(`{"secret": 2}`)}), ""},
		{"instances at the limit", p.fitsInstances("service s", 8), ""},
		{"instances over", p.fitsInstances("service s", 9), "service s would run 9 SLA module instances, over sla.maxInstances 8"},
		{"memory at the limit", p.fitsMapBytes("counter", 1<<19, 1<<19), ""},
		{"memory over", p.fitsMapBytes("counter", 1<<19, 1<<19+1), `module "counter": map memory 1048577 bytes (the service's SLA modules together) over sla.maxMapBytes 1048576`},
		{"zero policy allows nothing", SLAPolicy{}.permits(events.Module{Name: "counter"}), `module "counter" is not allowed for tenants (sla.modules)`},
	}
	for _, c := range cases {
		if c.want == "" {
			if c.err != nil {
				t.Errorf("%s: %v", c.name, c.err)
			}
			continue
		}
		if !errors.Is(c.err, errdefs.ErrUnprocessable) || c.err == nil || !strings.HasSuffix(c.err.Error(), c.want) {
			t.Errorf("%s: %v, want 422 ending %q", c.name, c.err, c.want)
		}
	}
}

// An SLA refused by the policy fails before anything is made: AcceptModules
// (before the deploy makes its veth) and HandleEvent alike.
func TestSLAPolicyRefusals(t *testing.T) {
	h := newHarness(t, ModeTCX)
	h.install(t, "proxy", true, true)
	h.m.opts.SLA.MaxInstances = 2
	h.k.mapBytes[h.obj("other")] = 1<<20 + 1
	cases := []struct {
		name   string
		mods   []events.Module
		accept string // AcceptModules' refusal, "" when it passes
		event  string // HandleEvent's
	}{
		{"module not allowed", []events.Module{{Name: "proxy"}}, `ebpfModules[0]: cannot be processed: module "proxy" is not allowed for tenants (sla.modules)`, "sla.modules)"},
		{"forbidden key", []events.Module{{Name: "dropper", Config: json.RawMessage(`{"secret": 1}`)}}, `(sla.modules.dropper.forbiddenKeys)`, "forbiddenKeys)"},
		{"too many", []events.Module{{Name: "counter"}, {Name: "dropper"}, {Name: "dropper", Config: json.RawMessage(`{"tos": 1}`)}},
			"this deploy would run 3 SLA module instances, over sla.maxInstances 2", "service a.b.c.d would run 3 SLA module instances, over sla.maxInstances 2"},
		{"map memory", []events.Module{{Name: "other"}}, "", `map memory 1048577 bytes (the service's SLA modules together) over sla.maxMapBytes 1048576`},
		{"map memory with MapSizes", []events.Module{{Name: "counter"}, {Name: "dropper", Config: json.RawMessage(`{"size": 131072}`)}}, "",
			`map memory 1050576 bytes (the service's SLA modules together) over sla.maxMapBytes 1048576`},
	}
	h.p.sizes["dropper"] = func(cfg json.RawMessage) (map[string]uint32, error) {
		var c struct{ Size uint32 }
		_ = json.Unmarshal(cfg, &c)
		return map[string]uint32{"m": c.Size}, nil
	}
	for _, c := range cases {
		err := h.m.AcceptModules(c.mods)
		if (c.accept == "") != (err == nil) || (err != nil && (!strings.Contains(err.Error(), c.accept) || !errors.Is(err, errdefs.ErrUnprocessable))) {
			t.Errorf("%s: AcceptModules: %v, want %q", c.name, err, c.accept)
		}
		err = h.deploy(t, withSLA(svc("a.b.c.d", 2), 0, c.mods...))
		if err == nil || !strings.Contains(err.Error(), c.event) || !errors.Is(err, errdefs.ErrUnprocessable) {
			t.Errorf("%s: HandleEvent: %v, want 422 with %q", c.name, err, c.event)
		}
		h.assertNothingLeft(t)
		h.assertChain(t, 2)
	}
}

// The limits count a service's SLA instances across its deployed instances:
// a second instance of the service with another config is one more.
func TestSLALimitsPerService(t *testing.T) {
	h := newHarness(t, ModeTCX)
	h.m.opts.SLA.MaxInstances, h.m.opts.SLA.MaxMapBytes = 1, 1500
	if err := h.deploy(t, withSLA(svc("a.b.c.d", 2), 0, events.Module{Name: "counter"})); err != nil {
		t.Fatal(err)
	}
	// The same SLA: the same instance, nothing more counted.
	if err := h.deploy(t, withSLA(svc("a.b.c.d", 3), 1, events.Module{Name: "counter"})); err != nil {
		t.Fatal(err)
	}
	err := h.deploy(t, withSLA(svc("a.b.c.d", 4), 2, events.Module{Name: "dropper"}))
	if err == nil || !strings.Contains(err.Error(), "service a.b.c.d would run 2 SLA module instances, over sla.maxInstances 1") {
		t.Fatalf("a second SLA instance for the service: %v", err)
	}
	h.m.opts.SLA.MaxInstances = 2
	err = h.deploy(t, withSLA(svc("a.b.c.d", 4), 2, events.Module{Name: "dropper"}))
	if err == nil || !strings.Contains(err.Error(), "map memory 2000 bytes") {
		t.Fatalf("the service's map memory together: %v", err)
	}
	// Another service has limits of its own.
	if err := h.deploy(t, withSLA(svc("a.b.c.e", 5), 0, events.Module{Name: "dropper"})); err != nil {
		t.Fatal(err)
	}
	if list := h.m.List(); len(list) != 2 {
		t.Fatalf("instances: %+v", list)
	}
}

// SLA instances run after every operator instance on their service's veths,
// in both modes, also when the operator's is loaded after them at a higher
// priority number (or at the highest): the order is by band, not load time.
func TestSLAAfterOperatorInstances(t *testing.T) {
	for _, mode := range []Mode{ModeTCX, ModeLegacy} {
		t.Run(string(mode), func(t *testing.T) {
			h := newHarness(t, mode)
			early := h.load(t, "other", 5)
			s1 := withSLA(svc("a.b.c.d", 2), 0, events.Module{Name: "dropper"}, events.Module{Name: "counter"})
			if err := h.deploy(t, s1); err != nil {
				t.Fatal(err)
			}
			sla := h.m.List()
			drop, count := sla[1], sla[2]
			if drop.Priority != SLAPriority || count.Priority != SLAPriority || !drop.SLA {
				t.Fatalf("SLA priorities: %+v", sla)
			}
			late := h.load(t, "counter", 900)
			last := h.load(t, "other", MaxPriority)
			auto, err := h.m.Load(LoadRequest{Name: "other"}) // no priority: after the operator's, before the SLA's
			if err != nil || auto.Priority != MaxPriority {
				t.Fatalf("load without a priority: %+v %v", auto, err)
			}
			h.assertChain(t, 2, early.ID, late.ID, last.ID, auto.ID, drop.ID, count.ID)
			// A service deployed now gets the same order.
			s2 := withSLA(svc("a.b.c.d", 3), 1, events.Module{Name: "dropper"}, events.Module{Name: "counter"})
			if err := h.deploy(t, s2); err != nil {
				t.Fatal(err)
			}
			h.assertChain(t, 3, early.ID, late.ID, last.ID, auto.ID, drop.ID, count.ID)
			if ids := infoIDs(h.m.List()); !slices.Equal(ids, []string{early.ID, late.ID, last.ID, auto.ID, drop.ID, count.ID}) {
				t.Fatalf("GET /ebpf order: %v", ids)
			}
			// An operator cannot ask for the SLA band.
			if _, err := h.m.Load(LoadRequest{Name: "other", Priority: prio(SLAPriority)}); !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("operator load at SLAPriority: %v", err)
			}
		})
	}
}

func infoIDs(list []Info) []string {
	var out []string
	for _, in := range list {
		out = append(out, in.ID)
	}
	return out
}

// In legacy mode SLA instances of different services share the band: each
// service's count from tie 0, none clashing with an operator's filter.
func TestSLALegacyTies(t *testing.T) {
	h := newHarness(t, ModeLegacy)
	for i, name := range []string{"a.b.c.d", "a.b.c.e"} {
		s := withSLA(svc(name, 2+i), 0, events.Module{Name: "dropper"}, events.Module{Name: "counter"})
		if err := h.deploy(t, s); err != nil {
			t.Fatal(err)
		}
	}
	h.m.mu.Lock()
	for _, in := range h.m.insts {
		if want := map[string]int{"dropper": 0, "counter": 1}[in.name]; in.tie != want {
			t.Errorf("instance %s (%s of %s): tie %d, want %d", in.id, in.name, in.slaService, in.tie, want)
		}
	}
	h.m.mu.Unlock()
}

// An SLA instance is on its service's veths and nowhere else: not on other
// services', not on host interfaces, whatever loads or deploys come after.
func TestSLAStaysOnItsService(t *testing.T) {
	h := newHarness(t, ModeTCX)
	host := h.load(t, "counter", 0)
	_ = host
	if _, err := h.m.Load(LoadRequest{Name: "other", Interfaces: []string{"eth9"}}); err != nil {
		t.Fatal(err)
	}
	own := withSLA(svc("a.b.c.d", 2), 0, events.Module{Name: "dropper"})
	for _, s := range []events.Service{svc("x.y.z.w", 3), own, svc("x.y.z.v", 4)} {
		if err := h.deploy(t, s); err != nil {
			t.Fatal(err)
		}
	}
	var sla Info
	for _, in := range h.m.List() {
		if in.SLA {
			sla = in
		}
	}
	if len(sla.Attachments) != 2 || len(sla.Interfaces) != 0 || !slices.Equal(sla.Services, []string{"a.b.c.d"}) {
		t.Fatalf("SLA instance: %+v", sla)
	}
	for _, a := range sla.Attachments {
		if a.Interface != "oak2" {
			t.Fatalf("SLA instance attached to %s", a.Interface)
		}
	}
	// The last word: attach refuses another service's veth or a host interface.
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	in := h.m.insts[sla.ID]
	for _, iface := range []module.Interface{serviceInterface(svc("x.y.z.w", 3)), {Name: "eth9"}} {
		if err := h.m.attach(in, iface); !errors.Is(err, errdefs.ErrConflict) {
			t.Errorf("attach the SLA instance to %s: %v", iface.Name, err)
		}
	}
}
