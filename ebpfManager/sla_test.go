package ebpfmanager

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

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
