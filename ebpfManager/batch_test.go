package ebpfmanager

import (
	"errors"
	"strings"
	"testing"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// A control plane that batches gets one batch around the attaches of a load
// onto several interfaces, and none around a deploy's single attach or a
// load onto one interface.
func TestBatchAroundLoad(t *testing.T) {
	h := newHarness(t, ModeTCX)
	h.p.batch["counter"] = true
	for _, s := range []string{"a.b.c.d", "a.b.c.e", "a.b.c.f"} {
		if err := h.deploy(t, svc(s, len(h.services)+2)); err != nil {
			t.Fatal(err)
		}
	}
	h.load(t, "counter", 10)
	f := h.p.mods["counter"][0]
	if got, want := strings.Join(f.calls, ","), "BeginBatch,Attach oak2,Attach oak3,Attach oak4,EndBatch"; got != want {
		t.Fatalf("calls of a load onto 3 services: %s, want %s", got, want)
	}
	if _, ok := any(fakeBatcher{f}).(module.Batcher); !ok {
		t.Fatal("fakeBatcher is no module.Batcher")
	}
	f.calls = nil
	if err := h.deploy(t, svc("a.b.c.g", 5)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.calls, ","); got != "Attach oak5" {
		t.Fatalf("calls of a deploy: %s, want Attach oak5 alone", got)
	}
	h2 := newHarness(t, ModeTCX)
	h2.p.batch["counter"] = true
	if err := h2.deploy(t, svc("a.b.c.d", 2)); err != nil {
		t.Fatal(err)
	}
	h2.load(t, "counter", 10)
	if got := strings.Join(h2.p.mods["counter"][0].calls, ","); got != "Attach oak2" {
		t.Fatalf("calls of a load onto one service: %s, want no batch", got)
	}
}

// An EndBatch that fails fails the load, and everything is undone; an
// Attach that fails inside a batch still gets its EndBatch, before the
// Detaches undo the rest.
func TestBatchFailureUndoesTheLoad(t *testing.T) {
	for _, tc := range []struct {
		failOn, calls, text string
	}{
		{"EndBatch", "BeginBatch,Attach oak2,Attach oak3,EndBatch,Detach oak2,Detach oak3,Close", "attached to 2 interfaces: fake module refuses EndBatch"},
		{"Attach", "BeginBatch,Attach oak2,EndBatch,Close", "refuses Attach"},
	} {
		t.Run(tc.failOn, func(t *testing.T) {
			h := newHarness(t, ModeTCX)
			h.p.batch["counter"] = true
			h.p.failOn["counter"] = tc.failOn
			_ = h.deploy(t, svc("a.b.c.d", 2))
			_ = h.deploy(t, svc("a.b.c.e", 3))
			_, err := h.m.Load(LoadRequest{Name: "counter"})
			if !errors.Is(err, errdefs.ErrUnprocessable) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("load: %v, want 422 containing %q", err, tc.text)
			}
			if got := strings.Join(h.p.mods["counter"][0].calls, ","); got != tc.calls {
				t.Fatalf("calls: %s, want %s", got, tc.calls)
			}
			for _, s := range append(h.services[:0:0], h.services...) {
				h.undeploy(t, s)
			}
			h.assertNothingLeft(t)
		})
	}
}
