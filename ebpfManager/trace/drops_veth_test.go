package trace

import (
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/oakestra/netmanager/test/bpftest"
	"github.com/oakestra/netmanager/test/nstest"
)

// vethPair: va (10.77.0.1) in one namespace, vb (10.77.0.2) in another.
func vethPair(t *testing.T) (a, b *nstest.Netns, vbIndex int) {
	t.Helper()
	a, b = nstest.NewNetns(t, "nm-dra"), nstest.NewNetns(t, "nm-drb")
	// No IPv6 on the pair: the MLD reports and router solicitations a new
	// link sends would be dropped too (and reported, rightly, as drops on
	// vb) before the test's UDP packet.
	noIPv6(t, a)
	noIPv6(t, b)
	a.MustExec(t, "ip", "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b.Name)
	a.MustExec(t, "ip", "addr", "add", "10.77.0.1/24", "dev", "va")
	a.MustExec(t, "ip", "link", "set", "va", "up")
	b.MustExec(t, "ip", "addr", "add", "10.77.0.2/24", "dev", "vb")
	b.MustExec(t, "ip", "link", "set", "vb", "up")
	if err := b.Do(func() error {
		ifc, err := net.InterfaceByName("vb")
		if ifc != nil {
			vbIndex = ifc.Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	a.MustExec(t, "ip", "neigh", "add", "10.77.0.2", "lladdr", "02:00:00:00:00:02", "dev", "va", "nud", "permanent")
	return a, b, vbIndex
}

// noIPv6 turns IPv6 off for links created in n from now on.
func noIPv6(t *testing.T, n *nstest.Netns) {
	t.Helper()
	if err := n.Do(func() error {
		err := os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // no IPv6 in this kernel
		}
		return err
	}); err != nil {
		t.Fatalf("disable IPv6 in %s: %v", n.Name, err)
	}
}

// shot is a TC program that drops every packet without nm_drop (another
// agent's, or a module without drop reasons).
func shot(t *testing.T) *ebpf.Program {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestDropMonitorOnVeth: real packets dropped by TC on a veth's ingress: a
// drop by nm_drop names its instance and the ingress hook (the kernel's
// SKB_DROP_REASON_TC_INGRESS); a drop by a program without nm_drop is
// reported unattributed (instance 0) on that device and hook; a monitor of
// the egress hook only reports neither.
func TestDropMonitorOnVeth(t *testing.T) {
	bpftest.RequireRoot(t)
	for _, c := range []struct {
		name     string
		prog     func(t *testing.T) *ebpf.Program
		instance uint32
		reason   uint32
	}{
		{"nm_drop", func(t *testing.T) *ebpf.Program { return dropperAs(t, 31) }, 31, 3},
		{"unattributed", shot, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b, vb := vethPair(t)
			s := startDrops(t, DropFilter{Ifaces: map[int]uint8{vb: 1 << HookIngress}, Only: true, HooksFiltered: true, Ours: true, Instances: []uint32{31}})
			egress := startDrops(t, DropFilter{Ifaces: map[int]uint8{vb: 1 << HookEgress}, Only: true, HooksFiltered: true, Ours: true, Instances: []uint32{31}})
			bpftest.AttachIngress(t, b.Do, vb, c.prog(t))
			if err := a.Do(func() error {
				c, err := net.Dial("udp4", "10.77.0.2:5353")
				if err != nil {
					return err
				}
				defer c.Close()
				_, err = c.Write([]byte("x"))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			d, ok := nextDrop(t, s)
			if !ok || d.Sport == 0 || d.Len == 0 {
				t.Fatalf("drop %+v (%v): want one with a source port and a length", d, ok)
			}
			want := Drop{Instance: c.instance, Reason: c.reason, Hook: HookIngress, Ifindex: vb, Proto: 17,
				Src: netip.MustParseAddr("10.77.0.1"), Dst: netip.MustParseAddr("10.77.0.2"), Dport: 5353}
			if c.reason != 0 {
				want.Detail = 7
			}
			d.Time, d.CPU, d.Sport, d.Len = time.Time{}, 0, 0, 0
			if d != want {
				t.Fatalf("drop %+v, want %+v", d, want)
			}
			if d, ok := nextDrop(t, egress); ok {
				t.Fatalf("a monitor of vb's egress reported %+v", d)
			}
		})
	}
}
