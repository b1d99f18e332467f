package main

import (
	"testing"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
)

// BenchmarkDataPlane: ns/packet for a session hit (a flow translated to
// itself, so the repeats see the same packet), IPv4 and IPv6, and for a
// pass-through miss.
func BenchmarkDataPlane(b *testing.B) {
	d := newDP(b)
	// A session that maps the flow onto itself keeps every repeat on the hit path.
	self := pxFlow{Src: [4]byte{10, 18, 0, 2}, Dst: [4]byte{10, 30, 0, 1}, Sport: [2]byte{0x9c, 0x40}, Dport: [2]byte{0, 80}, Proto: 6}
	if err := d.coll.Maps["sessions"].Put(self, pxSession{NewSrc: self.Src, NewDst: self.Dst, Ifindex: 1, MAC: [6]byte(bpftest.MACB)}); err != nil {
		b.Fatal(err)
	}
	self6 := pxFlow6{Src: v6("fd00:18::2").As16(), Dst: v6("fdff:2000::1").As16(), Sport: [2]byte{0x9c, 0x40}, Dport: [2]byte{0, 80}, Proto: 6}
	if err := d.coll.Maps["sessions6"].Put(self6, pxSession6{NewSrc: self6.Src, NewDst: self6.Dst, Ifindex: 1, MAC: [6]byte(bpftest.MACB)}); err != nil {
		b.Fatal(err)
	}
	frames := map[string][]byte{
		"hit":  tcpFrame(b, "10.18.0.2", "10.30.0.1", 40000, 80),
		"hit6": tcp6(b, "fd00:18::2", "fdff:2000::1", 40000, 80),
		"miss": tcpFrame(b, "10.18.0.2", "10.30.99.1", 40000, 80),
	}
	for _, name := range []string{"hit", "hit6", "miss"} {
		b.Run(name, func(b *testing.B) {
			prog := d.coll.Programs[module.ProgramIngress]
			b.ResetTimer()
			_, per, err := prog.Benchmark(frames[name], b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(per.Nanoseconds()), "ns/packet")
		})
	}
}
