package exptmp

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/test/bpftest"
)

func TestExp(t *testing.T) {
	coll := bpftest.Load(t, "/tmp/exp/exp.o")
	frame := bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), bpftest.IPv4("10.1.0.5", "10.2.0.7", layers.IPProtocolTCP), bpftest.TCP(40000, 5001), bpftest.Payload(make([]byte, 6)))
	names := []string{"noop", "adj_flags", "adj_plain", "change_head", "adj_decap", "pull", "ktime", "store"}
	res := map[string][]float64{}
	for round := 0; round < 5; round++ {
		for _, n := range names {
			p := coll.Programs[n]
			per := make([]time.Duration, 0, 200000)
			bpftest.OnOneCPU(t, func() {
				for range 200000 {
					_, d, err := p.Benchmark(frame, 1, nil)
					if err != nil {
						t.Fatal(err)
					}
					per = append(per, d)
				}
			})
			slices.Sort(per)
			res[n] = append(res[n], float64(per[len(per)/2].Nanoseconds()))
		}
	}
	for _, n := range names {
		fmt.Println(n, res[n])
	}
	_ = ebpf.SchedCLS
}
