package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
)

// BenchmarkDataPlane: ns/packet through BPF_PROG_TEST_RUN for a session hit
// (a flow translated to itself — fully: addresses, both checksums, MACs,
// redirect — so the repeats see the same packet), IPv4 and IPv6, for a
// pass-through miss, and for a no-op program: the harness's own cost.
func BenchmarkDataPlane(b *testing.B) {
	d := newDP(b)
	// A session that maps the flow onto itself keeps every repeat on the hit path.
	self := pxFlow{Src: [4]byte{10, 18, 0, 2}, Dst: [4]byte{10, 30, 0, 1}, Sport: [2]byte{0x9c, 0x40}, Dport: [2]byte{0, 80}, Proto: 6}
	diff := rewriteDiff([][]byte{self.Src[:], self.Dst[:]}, [][]byte{self.Src[:], self.Dst[:]})
	if err := d.coll.Maps["sessions"].Put(self, pxSession{NewSrc: self.Src, NewDst: self.Dst, Ifindex: 1, MAC: [6]byte(bpftest.MACB), CsumDiff: diff}); err != nil {
		b.Fatal(err)
	}
	self6 := pxFlow6{Src: v6("fd00:18::2").As16(), Dst: v6("fdff:2000::1").As16(), Sport: [2]byte{0x9c, 0x40}, Dport: [2]byte{0, 80}, Proto: 6}
	diff6 := rewriteDiff([][]byte{self6.Src[:], self6.Dst[:]}, [][]byte{self6.Src[:], self6.Dst[:]})
	if err := d.coll.Maps["sessions6"].Put(self6, pxSession6{NewSrc: self6.Src, NewDst: self6.Dst, Ifindex: 1, MAC: [6]byte(bpftest.MACB), CsumDiff: diff6}); err != nil {
		b.Fatal(err)
	}
	noop := bpftest.Noop(b)
	prog := d.coll.Programs[module.ProgramIngress]
	for _, c := range []struct {
		name  string
		prog  *ebpf.Program
		frame []byte
		want  int32
	}{
		{"noop", noop, tcpFrame(b, "10.18.0.2", "10.30.0.1", 40000, 80), next},
		{"hit", prog, tcpFrame(b, "10.18.0.2", "10.30.0.1", 40000, 80), redirect},
		{"hit6", prog, tcp6(b, "fd00:18::2", "fdff:2000::1", 40000, 80), redirect},
		{"miss", prog, tcpFrame(b, "10.18.0.2", "10.30.99.1", 40000, 80), next},
	} {
		b.Run(c.name, func(b *testing.B) {
			if v, _ := bpftest.Run(b, c.prog, c.frame); v != c.want {
				b.Fatalf("verdict %s, want %s", bpftest.Verdict(v), bpftest.Verdict(c.want))
			}
			b.ResetTimer()
			ret, per, err := c.prog.Benchmark(c.frame, b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			if int32(ret) != c.want {
				b.Fatalf("verdict %s, want %s", bpftest.Verdict(int32(ret)), bpftest.Verdict(c.want))
			}
			b.ReportMetric(float64(per.Nanoseconds()), "ns/packet")
		})
	}
}

// BenchmarkTunnel: ns/packet of the kernel tunnel's paths, each packet a
// fresh copy (the program changes its length, so repeats of one skb would
// not stay on the path): Program.Benchmark with one repeat per packet, the
// kernel's own timing of the run, in the tunnel fixture's namespace (routes
// and neighbours for bpf_fib_lookup). "noop" is the harness's cost measured
// the same way; "local" a session hit delivered on this node, for
// comparison. (Benchmark takes no skb context: for "decap" the underlay is
// the namespace's loopback, where test runs arrive.)
func BenchmarkTunnel(b *testing.B) {
	td := newTunDP(b)
	noop := bpftest.Noop(b)
	prog := td.coll.Programs[module.ProgramIngress]
	f := clientFlows(b)[0]
	for _, c := range []struct {
		name     string
		prog     *ebpf.Program
		underlay bool
		frame    []byte
	}{
		{"noop", noop, false, f.out},
		{"local", prog, false, tcpFrame(b, "10.18.0.2", "10.30.0.10", 40000, 7000)},
		{"encap", prog, false, f.out},
		{"decap", prog, true, datagram(b, peerNode, f.reply)},
	} {
		b.Run(c.name, func(b *testing.B) {
			want := int32(redirect)
			if c.prog == noop {
				want = next
			}
			if c.underlay {
				td.underlayIs(b, 1)
				defer td.underlayIs(b, uint32(td.ul))
			}
			var total time.Duration
			b.ResetTimer()
			err := td.ns.Do(func() error {
				for i := 0; i < b.N; i++ {
					ret, per, err := c.prog.Benchmark(c.frame, 1, nil)
					if err != nil || int32(ret) != want {
						return fmt.Errorf("run %d: verdict %d: %v", i, int32(ret), err)
					}
					total += per
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/packet")
		})
	}
}

// underlayIs points the data plane's underlay at another ifindex.
func (td *tunDP) underlayIs(b *testing.B, ifindex uint32) {
	td.px.mu.Lock()
	defer td.px.mu.Unlock()
	c := td.px.conf
	c.UlIfindex = ifindex
	if err := td.px.writeConfig(c); err != nil {
		b.Fatal(err)
	}
}
