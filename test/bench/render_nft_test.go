package bench

import (
	"strings"
	"testing"
)

// The section gives medians, their ratios and the ratio of each round.
func TestRenderNft(t *testing.T) {
	r := NftResult{Rounds: 3, Samples: []NftSample{
		{Variant: "none", Rules: 10, PPS: []float64{100, 120, 110}, Gbits: []float64{10, 10, 10}, ConnPerSec: []float64{1000, 1000, 1000}},
		{Variant: "firewall", Rules: 10, PPS: []float64{90, 121, 110}, Gbits: []float64{9, 11, 10}, ConnPerSec: []float64{900, 1100, 1000}},
		{Variant: "nftables", Rules: 10, PPS: []float64{100, 110, 100}, Gbits: []float64{10, 10, 10}, ConnPerSec: []float64{1000, 1000, 0}},
	}}
	md := RenderNft(r)
	for _, want := range []string{
		"Medians of 3 rounds",
		"| 10 | firewall | 110 | 10.00 | 1000 |",
		"| 10 | firewall/nftables | 1.10× | 1.00× | 1.00× |",
		"| 10 | firewall/none | 1.00× | 1.00× | 1.00× |",
		"- 10 rules: UDP pkts/s 0.90, 1.10, 1.10; TCP Gbit/s 0.90, 1.10, 1.00; TCP conn/s 0.90, 1.10, n/a",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("section lacks %q:\n%s", want, md)
		}
	}
}
