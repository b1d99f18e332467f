package kernel

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// ProgramInfo names an attached program; a program that is gone is
// ErrNotFound, not a failure.
func TestProgramInfo(t *testing.T) {
	ns := vethNS(t)
	k, _ := New("tcx")
	dp := loadCounter(t, k, filepath.Join(pinRoot(t), "a"))
	id, _ := dp.ProgramID(module.HookIngress)
	in(t, ns, func() error {
		idx, err := k.Ifindex("va")
		if err != nil {
			return err
		}
		l, err := k.Attach(ebpfmanager.AttachRequest{DataPlane: dp, Hook: module.HookIngress, Ifindex: idx, Ifname: "va"})
		if err != nil {
			return err
		}
		defer l.Close()
		pi, err := k.ProgramInfo(id)
		if err != nil || pi.ID != id || pi.Name == "" || len(pi.Tag) != 16 || pi.Type != "SchedCLS" {
			return fmt.Errorf("ProgramInfo(%d): %+v, %v", id, pi, err)
		}
		return nil
	})
	if err := dp.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := k.ProgramInfo(id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a closed program: %v, want ErrNotFound", err)
	}
}

// BenchmarkForeignScan is what one scan for foreign programs asks of the
// kernel (ebpfmanager's scanForeign, cached for a second under GET
// /metrics): the chains of 50 veths × 2 hooks carrying 10 instances'
// programs, and the description of the one foreign program among them.
func BenchmarkForeignScan(b *testing.B) {
	ns := vethNS(b)
	k, _ := New("tcx")
	pins := pinRoot(b)
	owned := map[uint32]bool{}
	var dps []ebpfmanager.DataPlane
	for i := range 10 {
		dp := loadCounter(b, k, filepath.Join(pins, fmt.Sprint(i)))
		dps = append(dps, dp)
		for _, h := range module.Hooks {
			id, _ := dp.ProgramID(h)
			owned[id] = true
		}
	}
	foreignDP := loadCounter(b, k, filepath.Join(pins, "foreign"))
	var idxs []int
	in(b, ns, func() error {
		for v := range 50 {
			name := fmt.Sprintf("bv%d", v)
			ns.MustExec(b, "ip", "link", "add", name, "type", "veth", "peer", "name", name+"p")
			idx, err := k.Ifindex(name)
			if err != nil {
				return err
			}
			idxs = append(idxs, idx)
			for _, dp := range dps {
				for _, h := range module.Hooks {
					l, err := k.Attach(ebpfmanager.AttachRequest{DataPlane: dp, Hook: h, Ifindex: idx, Ifname: name})
					if err != nil {
						return err
					}
					b.Cleanup(func() { _ = l.Close() })
				}
			}
		}
		l, err := k.Attach(ebpfmanager.AttachRequest{DataPlane: foreignDP, Hook: module.HookIngress, Ifindex: idxs[0], Ifname: "bv0"})
		if err == nil {
			b.Cleanup(func() { _ = l.Close() })
		}
		return err
	})
	in(b, ns, func() error { // b.Loop: the setup above runs once
		for b.Loop() {
			if found := scanOnce(b, k, idxs, owned); found != 1 {
				b.Fatalf("found %d foreign programs, want 1", found)
			}
		}
		return nil
	})
}

// scanOnce reads every hook's chain and describes the programs not owned.
func scanOnce(b *testing.B, k *Kernel, idxs []int, owned map[uint32]bool) int {
	found := 0
	for _, idx := range idxs {
		for _, h := range module.Hooks {
			chain, _, err := k.Chain(idx, h)
			if err != nil {
				b.Fatal(err)
			}
			for _, id := range chain {
				if !owned[id] {
					if _, err := k.ProgramInfo(id); err != nil {
						b.Fatal(err)
					}
					found++
				}
			}
		}
	}
	return found
}
