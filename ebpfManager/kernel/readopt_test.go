package kernel

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/test/bpftest"
)

// A run that ends with Release leaves its program attached and its maps
// pinned; the next run's Load with Reuse gets those maps (their contents
// too), and Attach with Adopt swaps its program into the pinned link in
// place: one program on the hook throughout, never zero or two.
func TestReleaseThenAdopt(t *testing.T) {
	for _, mode := range []string{"tcx", "legacy"} {
		t.Run(mode, func(t *testing.T) { releaseThenAdopt(t, mode) })
	}
}

func releaseThenAdopt(t *testing.T, mode string) {
	ns := vethNS(t)
	pins := pinRoot(t)
	maps, linkPin := filepath.Join(pins, "maps"), filepath.Join(pins, "links", "va_ingress")
	obj := bpftest.ModuleObject(t, "modules", "packetcounter")
	k, _ := New(mode)
	in(t, ns, func() error {
		idx, err := k.Ifindex("va")
		if err != nil {
			return err
		}
		req := func(dp ebpfmanager.DataPlane, adopt bool) ebpfmanager.AttachRequest {
			return ebpfmanager.AttachRequest{DataPlane: dp, Hook: module.HookIngress, Ifindex: idx, Ifname: "va",
				Place: ebpfmanager.Place{Priority: 300}, PinPath: linkPin, Adopt: adopt}
		}
		old, err := k.Load(ebpfmanager.LoadOptions{Object: obj, PinDir: maps})
		if err != nil {
			return err
		}
		key := make([]byte, old.SDK().Maps["counts"].KeySize())
		val := make([][]byte, ebpf.MustPossibleCPU()) // a per-CPU map
		for i := range val {
			val[i] = make([]byte, old.SDK().Maps["counts"].ValueSize())
		}
		val[0][0] = 42
		if err := old.SDK().Maps["counts"].Put(key, val); err != nil {
			return err
		}
		l, err := k.Attach(req(old, true)) // nothing to adopt yet: attaches
		if err != nil || l.Adopted() {
			t.Fatalf("first attach: adopted %v, %v", l != nil && l.Adopted(), err)
		}
		oldID, _ := old.ProgramID(module.HookIngress)
		if err := errors.Join(l.Release(), old.Release()); err != nil {
			return err
		}
		if chain, _, _ := k.Chain(idx, module.HookIngress); !slices.Equal(chain, []uint32{oldID}) {
			t.Fatalf("after release the chain is %v, want the old program %d", chain, oldID)
		}

		k2, _ := New(mode) // the next run
		dp, err := k2.Load(ebpfmanager.LoadOptions{Object: obj, PinDir: maps, Reuse: true})
		if err != nil {
			return err
		}
		defer dp.Close()
		var got [][]byte
		if err := dp.SDK().Maps["counts"].Lookup(key, &got); err != nil || got[0][0] != 42 || !dp.Reused() {
			t.Fatalf("reused map: %v %v reused=%v", got, err, dp.Reused())
		}
		l2, err := k2.Attach(req(dp, true))
		if err != nil {
			return err
		}
		newID, _ := dp.ProgramID(module.HookIngress)
		if chain, _, _ := k2.Chain(idx, module.HookIngress); !l2.Adopted() || !slices.Equal(chain, []uint32{newID}) {
			t.Fatalf("after adopting: adopted %v, chain %v, want only %d", l2.Adopted(), chain, newID)
		}
		if err := l2.Close(); err != nil {
			return err
		}
		if chain, _, _ := k2.Chain(idx, module.HookIngress); len(chain) != 0 {
			t.Fatalf("after close: %v", chain)
		}
		return nil
	})
}

// Maps pinned by an earlier run that the object's spec does not fit (here:
// another size) are refused with a conflict, not silently replaced.
func TestReuseRefusesAMismatch(t *testing.T) {
	bpftest.RequireRoot(t)
	pins := pinRoot(t)
	obj := bpftest.ModuleObject(t, "modules", "packetcounter")
	k, _ := New("tcx")
	old, err := k.Load(ebpfmanager.LoadOptions{Object: obj, PinDir: pins})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	_, err = k.Load(ebpfmanager.LoadOptions{Object: obj, PinDir: pins, Reuse: true, MapSizes: map[string]uint32{"counts": 7}})
	if !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("reuse with another map size: %v, want ErrConflict", err)
	}
	m, err := ebpf.LoadPinnedMap(filepath.Join(pins, "counts"), nil)
	if err != nil || m.MaxEntries() != old.SDK().Maps["counts"].MaxEntries() {
		t.Fatalf("the pinned map after a refused reuse: %v %v", m, err)
	}
	m.Close()
}
