package bpf

import (
	"slices"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/test/bpftest"
)

// BenchmarkHelperFloor: ns/packet of programs that make one helper call
// each (testdata/floortest.bpf.c) beside one that makes none, on a 60-byte
// IPv4 TCP frame (GRE in IPv4 for the decapsulation). Each packet is one
// BPF_PROG_TEST_RUN of one repeat (a repeat would grow or shrink the
// packet again), on one CPU, and the figure is the median of the kernel's
// timings, as in modules/sdwan's BenchmarkGRE: what is left of an
// encapsulation's cost once the program's own work is gone.
func BenchmarkHelperFloor(b *testing.B) {
	bpftest.RequireRoot(b)
	coll := bpftest.Load(b, bpftest.Compile(b, "testdata/floortest.bpf.c"))
	tcp := bpftest.Serialize(b, bpftest.Eth(layers.EthernetTypeIPv4), bpftest.IPv4("10.1.0.5", "10.2.0.7", layers.IPProtocolTCP),
		bpftest.TCP(40000, 5001), bpftest.Payload(make([]byte, 6)))
	gre := append(bpftest.Serialize(b, bpftest.Eth(layers.EthernetTypeIPv4), bpftest.IPv4("192.0.2.2", "192.0.2.1", layers.IPProtocolGRE),
		bpftest.Payload([]byte{0, 0, 0x08, 0x00})), tcp[14:]...)
	for _, c := range []struct {
		name  string
		frame []byte
		want  int32
	}{
		{"none", tcp, -1},
		{"clock", tcp, -1},
		{"redirect", tcp, 7},
		{"grow_head", tcp, -1},
		{"grow_gre", tcp, -1},
		{"shrink_gre", gre, -1},
	} {
		b.Run(c.name, func(b *testing.B) {
			prog := coll.Programs[c.name]
			per := make([]time.Duration, 0, b.N)
			bpftest.OnOneCPU(b, func() {
				for range b.N {
					ret, d, err := prog.Benchmark(c.frame, 1, nil)
					if err != nil {
						b.Fatal(err)
					}
					if int32(ret) != c.want {
						b.Fatalf("verdict %s, want %s", bpftest.Verdict(int32(ret)), bpftest.Verdict(c.want))
					}
					per = append(per, d)
				}
			})
			slices.Sort(per)
			b.ReportMetric(float64(per[len(per)/2].Nanoseconds()), "ns/packet")
		})
	}
}
