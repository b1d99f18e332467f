package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/test/bpftest"
	"github.com/oakestra/netmanager/test/nstest"
)

// vethNS makes a namespace holding a veth pair "va"/"vb" and returns it.
func vethNS(t testing.TB) *nstest.Netns {
	t.Helper()
	bpftest.RequireRoot(t)
	ns := nstest.NewNetns(t, "nm-kern")
	ns.MustExec(t, "ip", "link", "add", "va", "type", "veth", "peer", "name", "vb")
	ns.MustExec(t, "ip", "link", "set", "va", "up")
	return ns
}

func pinRoot(t testing.TB) string {
	t.Helper()
	if _, err := EnsureBPFFS(DefaultBPFFS); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(DefaultBPFFS, nstest.UniqueName("nm-kern"))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func loadCounter(t testing.TB, k *Kernel, pins string) ebpfmanager.DataPlane {
	t.Helper()
	dp, err := k.Load(ebpfmanager.LoadOptions{Object: bpftest.ModuleObject(t, "modules", "packetcounter"), PinDir: pins})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dp.Close() })
	return dp
}

func in(t testing.TB, ns *nstest.Netns, fn func() error) {
	t.Helper()
	if err := ns.Do(fn); err != nil {
		t.Fatal(err)
	}
}

func TestProbeFindsTCX(t *testing.T) {
	bpftest.RequireRoot(t)
	if !HaveTCX() {
		t.Fatal("this kernel (6.18) has TCX, the probe says it has not")
	}
	k, err := New("auto")
	if err != nil || k.Mode() != ebpfmanager.ModeTCX {
		t.Fatalf("auto mode: %v %v", k, err)
	}
	if _, err := New("xdp"); err == nil {
		t.Fatal("unknown mode accepted")
	}
}

// TCX anchors place programs as the fake kernel models: tail, before, after;
// a stale revision is refused; closing removes exactly that program.
func TestTCXAnchors(t *testing.T) {
	ns := vethNS(t)
	pins := pinRoot(t)
	k, _ := New("tcx")
	dps := []ebpfmanager.DataPlane{loadCounter(t, k, filepath.Join(pins, "a")), loadCounter(t, k, filepath.Join(pins, "b")), loadCounter(t, k, filepath.Join(pins, "c"))}
	id := func(i int) uint32 { v, _ := dps[i].ProgramID(module.HookIngress); return v }
	in(t, ns, func() error {
		idx, err := k.Ifindex("va")
		if err != nil {
			return err
		}
		attach := func(i int, p ebpfmanager.Place) (ebpfmanager.Link, error) {
			return k.Attach(ebpfmanager.AttachRequest{DataPlane: dps[i], Hook: module.HookIngress, Ifindex: idx, Ifname: "va", Place: p,
				PinPath: filepath.Join(pins, "links", string(rune('a'+i)))})
		}
		l0, err := attach(0, ebpfmanager.Place{Anchor: ebpfmanager.AnchorTail})
		if err != nil {
			return err
		}
		if _, err := attach(1, ebpfmanager.Place{Anchor: ebpfmanager.AnchorBefore, ProgID: id(0)}); err != nil {
			return err
		}
		_, rev, _ := k.Chain(idx, module.HookIngress)
		if _, err := attach(2, ebpfmanager.Place{Anchor: ebpfmanager.AnchorAfter, ProgID: id(1), Revision: rev - 1}); !errors.Is(err, ebpfmanager.ErrChainChanged) {
			t.Errorf("stale revision: %v", err)
		}
		if _, err := attach(2, ebpfmanager.Place{Anchor: ebpfmanager.AnchorAfter, ProgID: id(1), Revision: rev}); err != nil {
			return err
		}
		chain, _, _ := k.Chain(idx, module.HookIngress)
		if want := []uint32{id(1), id(2), id(0)}; !slices.Equal(chain, want) {
			t.Errorf("chain %v, want %v", chain, want)
		}
		if _, err := os.Stat(filepath.Join(pins, "links", "a")); err != nil {
			t.Errorf("link not pinned: %v", err)
		}
		if err := l0.Close(); err != nil {
			return err
		}
		chain, _, _ = k.Chain(idx, module.HookIngress)
		if want := []uint32{id(1), id(2)}; !slices.Equal(chain, want) {
			t.Errorf("after close: %v, want %v", chain, want)
		}
		if _, err := os.Stat(filepath.Join(pins, "links", "a")); err == nil {
			t.Error("closed link still pinned")
		}
		return nil
	})
}

// Legacy filters run in ascending priority; the clsact qdisc we add goes with
// our last filter, one that was there before stays.
func TestLegacyPriorities(t *testing.T) {
	ns := vethNS(t)
	pins := pinRoot(t)
	k, _ := New("legacy")
	dps := []ebpfmanager.DataPlane{loadCounter(t, k, filepath.Join(pins, "a")), loadCounter(t, k, filepath.Join(pins, "b"))}
	in(t, ns, func() error {
		idx, _ := k.Ifindex("va")
		var links []ebpfmanager.Link
		for i, prio := range []uint16{200, 100} {
			l, err := k.Attach(ebpfmanager.AttachRequest{DataPlane: dps[i], Hook: module.HookEgress, Ifindex: idx, Ifname: "va", Place: ebpfmanager.Place{Priority: prio}})
			if err != nil {
				return err
			}
			links = append(links, l)
		}
		if _, err := k.Attach(ebpfmanager.AttachRequest{DataPlane: dps[0], Hook: module.HookEgress, Ifindex: idx, Ifname: "va", Place: ebpfmanager.Place{Priority: 100}}); err == nil {
			t.Error("a second filter at a used priority was accepted")
		}
		chain, _, _ := k.Chain(idx, module.HookEgress)
		a, _ := dps[0].ProgramID(module.HookEgress)
		b, _ := dps[1].ProgramID(module.HookEgress)
		if want := []uint32{b, a}; !slices.Equal(chain, want) {
			t.Errorf("chain %v, want %v", chain, want)
		}
		for _, l := range links {
			if err := l.Close(); err != nil {
				return err
			}
		}
		if hasClsact(t, idx) {
			t.Error("clsact left after our last filter")
		}
		return nil
	})
	// A clsact someone else made is kept.
	ns.MustExec(t, "tc", "qdisc", "add", "dev", "vb", "clsact")
	in(t, ns, func() error {
		idx, _ := k.Ifindex("vb")
		l, err := k.Attach(ebpfmanager.AttachRequest{DataPlane: dps[0], Hook: module.HookIngress, Ifindex: idx, Ifname: "vb", Place: ebpfmanager.Place{Priority: 64}})
		if err != nil {
			return err
		}
		if err := l.Close(); err != nil {
			return err
		}
		if !hasClsact(t, idx) {
			t.Error("removed a clsact qdisc we did not create")
		}
		return nil
	})
}

func hasClsact(t testing.TB, idx int) bool {
	l, err := netlink.LinkByIndex(idx)
	if err != nil {
		t.Fatal(err)
	}
	qs, _ := netlink.QdiscList(l)
	for _, q := range qs {
		if q.Type() == "clsact" {
			return true
		}
	}
	return false
}

func TestLoad(t *testing.T) {
	bpftest.RequireRoot(t)
	pins := pinRoot(t)
	k, _ := New("auto")
	obj := bpftest.ModuleObject(t, "modules", "packetcounter")
	dp, err := k.Load(ebpfmanager.LoadOptions{Object: obj, PinDir: filepath.Join(pins, "x"), MapSizes: map[string]uint32{"counts": 42}})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := dp.SDK().Maps["counts"].Info()
	if info.MaxEntries != 42 {
		t.Errorf("max_entries %d, want 42", info.MaxEntries)
	}
	if _, err := os.Stat(filepath.Join(pins, "x", "counts")); err != nil {
		t.Errorf("map not pinned: %v", err)
	}
	if err := dp.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pins, "x", "counts")); err == nil {
		t.Error("map still pinned after Close")
	}

	_, err = k.Load(ebpfmanager.LoadOptions{Object: obj, PinDir: filepath.Join(pins, "y"), MapSizes: map[string]uint32{"nosuch": 1}})
	if !errors.Is(err, errdefs.ErrUnprocessable) || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("unknown map: %v", err)
	}
	_, err = k.Load(ebpfmanager.LoadOptions{Object: bpftest.Compile(t, "testdata/bad.bpf.c"), PinDir: filepath.Join(pins, "z")})
	if !errors.Is(err, errdefs.ErrUnprocessable) || !strings.Contains(err.Error(), "verifier") || !strings.Contains(err.Error(), "invalid") {
		t.Errorf("verifier rejection: %v", err)
	}
	_, err = k.Load(ebpfmanager.LoadOptions{Object: "testdata/bad.bpf.c", PinDir: filepath.Join(pins, "w")})
	if !errors.Is(err, errdefs.ErrUnprocessable) {
		t.Errorf("not an ELF object: %v", err)
	}
}

func TestPluginsRefuse(t *testing.T) {
	if _, _, err := (Plugins{}).Open("/nonexistent/x.so"); err == nil {
		t.Fatal("opened a missing plugin")
	}
}

// BenchmarkAttachServiceVeth measures what a new service veth costs per
// module: attaching its program to both hooks (detaching is not timed).
func BenchmarkAttachServiceVeth(b *testing.B) {
	for _, mode := range []string{"tcx", "legacy"} {
		b.Run(mode, func(b *testing.B) {
			ns := vethNS(b)
			pins := pinRoot(b)
			k, _ := New(mode)
			dp := loadCounter(b, k, filepath.Join(pins, "dp"))
			in(b, ns, func() error {
				idx, _ := k.Ifindex("va")
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					var ls []ebpfmanager.Link
					for _, h := range module.Hooks {
						l, err := k.Attach(ebpfmanager.AttachRequest{DataPlane: dp, Hook: h, Ifindex: idx, Ifname: "va",
							Place: ebpfmanager.Place{Anchor: ebpfmanager.AnchorTail, Priority: 64}})
						if err != nil {
							return err
						}
						ls = append(ls, l)
					}
					b.StopTimer()
					for _, l := range ls {
						_ = l.Close()
					}
					b.StartTimer()
				}
				return nil
			})
		})
	}
}
