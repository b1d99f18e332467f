package main

import (
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
)

// BenchmarkGRE: ns/packet of encapsulation (LAN ingress, a cached
// flow redirected over WAN 1) and decapsulation (GRE from WAN 1's peer, to
// the LAN host by the FIB), IPv4 and IPv6 inner packets, beside a no-op
// program measured the same way.
//
// Both rewrite the packet, and BPF_PROG_TEST_RUN repeats a program on one
// skb, so a repeat would see the packet already encapsulated (or already
// decapsulated). Every packet is therefore one BPF_PROG_TEST_RUN of one
// repeat, and the figure is the median of the kernel's timings. A run
// without a context happens on the loopback device (ifindex 1): the
// benchmark gives ifindex 1 the role of the interface the packet arrives
// on. WAN 1's next hop has a neighbour entry, so both paths take their next
// hop from the cache after the first packet, as on a live gateway.
func BenchmarkGRE(b *testing.B) {
	w := newGW(b, `[{"id": 1, "dst": "10.2.0.0/16", "action": "redirect", "target": "wan1"},
	  {"id": 2, "dst": "fd02::/16", "action": "redirect", "target": "wan1"}]`, `[]`, `, "nexthopRefresh": "0s"`)
	w.ns.MustExec(b, "ip", "neigh", "add", "192.0.2.2", "lladdr", peerMAC.String(), "dev", "wan1", "nud", "permanent")
	noop := bpftest.Noop(b)
	inner6 := bpftest.Serialize(b, bpftest.IPv6("fd02::7", "fd01::5", layers.IPProtocolTCP), tcpData(5001, 40000), bpftest.Payload(make([]byte, 6)))
	lan6 := append(ethBytes(bpftest.MACB, bpftest.MACA, layers.EthernetTypeIPv6),
		bpftest.Serialize(b, bpftest.IPv6("fd01::5", "fd02::7", layers.IPProtocolTCP), tcpData(40000, 5001), bpftest.Payload(make([]byte, 6)))...)
	inner4 := bpftest.Serialize(b, ip4("10.2.0.7", "10.1.0.5", layers.IPProtocolTCP, 0), tcpData(5001, 40000), bpftest.Payload(make([]byte, 6)))
	lan, wan := sdRole{Role: sdRoleLAN}, sdRole{Role: sdRoleWAN, WAN: 0}
	for _, c := range []struct {
		name  string
		prog  *ebpf.Program
		role  sdRole
		frame []byte
		want  int32
	}{
		{"noop", noop, lan, lanTCP(b, "10.2.0.7", 40000, 5001, 0, 6), next},
		{"encap", w.coll.Programs[module.ProgramIngress], lan, lanTCP(b, "10.2.0.7", 40000, 5001, 0, 6), redirect},
		{"encap6", w.coll.Programs[module.ProgramIngress], lan, lan6, redirect},
		{"decap", w.coll.Programs[module.ProgramIngress], wan, greFrame(b, "192.0.2.2", "192.0.2.1", layers.EthernetTypeIPv4, inner4), redirect},
		{"decap6", w.coll.Programs[module.ProgramIngress], wan, greFrame(b, "192.0.2.2", "192.0.2.1", layers.EthernetTypeIPv6, inner6), redirect},
	} {
		b.Run(c.name, func(b *testing.B) {
			if err := w.coll.Maps["roles"].Put(uint32(1), c.role); err != nil {
				b.Fatal(err)
			}
			if err := w.g.cache.bump(); err != nil { // as Attach does after a role
				b.Fatal(err)
			}
			per := make([]time.Duration, 0, b.N)
			err := w.ns.Do(func() error {
				for range b.N {
					ret, d, err := c.prog.Benchmark(c.frame, 1, nil)
					if err != nil {
						return err
					}
					if int32(ret) != c.want {
						b.Fatalf("verdict %s, want %s", bpftest.Verdict(int32(ret)), bpftest.Verdict(c.want))
					}
					per = append(per, d)
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			slices.Sort(per)
			b.ReportMetric(float64(per[len(per)/2].Nanoseconds()), "ns/packet")
		})
	}
}
