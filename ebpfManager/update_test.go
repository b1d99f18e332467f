package ebpfmanager

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// progs is the chain on each hook of the veths.
func (h *harness) progs(veths ...int) string {
	var out []string
	for _, v := range veths {
		for _, hook := range module.Hooks {
			out = append(out, fmt.Sprint(v, hook, h.k.programs(v, hook)))
		}
	}
	return strings.Join(out, " ")
}

func TestUpdateInPlace(t *testing.T) {
	store := &memStore{}
	h := newHarness(t, ModeTCX)
	h.m.opts.Store = store
	a := h.load(t, "counter", 10)
	h.load(t, "dropper", 20)
	for _, i := range []int{3, 4} {
		if err := h.deploy(t, svc(fmt.Sprintf("app.ns.s%d.ns", i), i)); err != nil {
			t.Fatal(err)
		}
	}
	oldMod := h.p.mods["counter"][0]
	before := h.progs(3, 4)

	// A new config, same priority: each program replaced where it runs.
	info, err := h.m.Update(a.ID, UpdateRequest{Config: json.RawMessage(`{"v":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	h.assertChain(t, 3, a.ID, "2")
	h.assertChain(t, 4, a.ID, "2")
	if after := h.progs(3, 4); after == before {
		t.Fatal("the programs did not change")
	}
	nu := h.p.mods["counter"][1]
	if string(nu.base.Config) != `{"v":2}` || !nu.base.Readopted || !strings.HasSuffix(strings.Join(oldMod.calls, ","), "Close") {
		t.Fatalf("new control plane %s readopted %v; old calls %v", nu.base.Config, nu.base.Readopted, oldMod.calls)
	}
	if len(info.Attachments) != 4 || string(info.Config) != `{"v":2}` || string(store.saved[0].Config) != `{"v":2}` {
		t.Fatalf("after the update: %+v, declared %+v", info, store.saved)
	}

	// A new priority: the instance moves behind the dropper.
	if _, err := h.m.Update(a.ID, UpdateRequest{Priority: prio(30)}); err != nil {
		t.Fatal(err)
	}
	h.assertChain(t, 3, "2", a.ID)
	if pins, _ := h.k.Pins(h.pins + "/" + a.ID + "/links"); !slices.Equal(pins, []string{"oak3_egress", "oak3_ingress", "oak4_egress", "oak4_ingress"}) {
		t.Fatalf("link pins after moving: %v", pins)
	}

	// Failures leave the running version as it was.
	running := h.progs(3, 4)
	h.p.newErr["counter"] = errors.New("refused")
	if _, err := h.m.Update(a.ID, UpdateRequest{Config: json.RawMessage(`{"v":3}`)}); err == nil {
		t.Fatal("a refused New updated")
	}
	delete(h.p.newErr, "counter")
	h.p.failOn["counter"] = "Attach" // the new version fails on its first interface
	if _, err := h.m.Update(a.ID, UpdateRequest{Config: json.RawMessage(`{"v":3}`)}); err == nil {
		t.Fatal("an update whose Attach failed succeeded")
	}
	delete(h.p.failOn, "counter")
	h.k.failLoad[h.obj("counter")] = fmt.Errorf("%w: the maps pinned do not fit", errdefs.ErrConflict)
	if _, err := h.m.Update(a.ID, UpdateRequest{}); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("incompatible maps: %v", err)
	}
	delete(h.k.failLoad, h.obj("counter"))
	if got := h.progs(3, 4); got != running {
		t.Fatalf("after failed updates the chains are\n%s\nwant\n%s", got, running)
	}
	if info, _ := h.m.Get(a.ID); info.State != StateRunning || string(info.Config) != `{"v":2}` {
		t.Fatalf("after failed updates: %+v", info)
	}
	for _, bad := range []struct {
		id  string
		req UpdateRequest
		err error
	}{{"99", UpdateRequest{}, errdefs.ErrNotFound}, {a.ID, UpdateRequest{Priority: prio(5000)}, errdefs.ErrInvalid},
		{a.ID, UpdateRequest{Config: json.RawMessage(`5`)}, errdefs.ErrInvalid}} {
		if _, err := h.m.Update(bad.id, bad.req); !errors.Is(err, bad.err) {
			t.Errorf("update %s %+v: %v, want %v", bad.id, bad.req, err, bad.err)
		}
	}
	if err := h.m.Close(); err != nil {
		t.Fatal(err)
	}
	h.assertNothingLeft(t)
}
