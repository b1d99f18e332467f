package bench

import (
	"fmt"
	"strings"
)

// CrossResult is what BenchmarkCrossNode measures.
type CrossResult struct {
	// Paths: the user-space tunnel and plain routing alternating, then the
	// eBPF tunnel and plain routing alternating (the module loaded).
	Paths          []Result `json:"paths"`
	FirstConnectUs float64  `json:"firstConnectMicroseconds"` // to a service never asked about
	Offload        bool     `json:"offload"`                  // the underlay carries GSO packets whole
}

// RenderCross returns the cross-node section of docs/benchmarks.md: one
// table per underlay.
func RenderCross(rs []CrossResult) string {
	var md strings.Builder
	for _, r := range rs {
		if r.Offload {
			md.WriteString("\n### Virtual wire: the underlay interfaces offload checksums and segmentation (GSO packets cross whole)\n\n")
		} else {
			md.WriteString("\n### Wire: the underlay interfaces offload nothing (MTU-sized frames, checksums complete, as between machines)\n\n")
		}
		renderCross(&md, r)
	}
	return md.String()
}

func renderCross(md *strings.Builder, r CrossResult) {
	md.WriteString("| path | TCP Gbit/s (median of 3) | connect p50 / p90 / p99 µs (500) |\n|---|---|---|\n")
	for _, p := range r.Paths {
		fmt.Fprintf(md, "| %s (%s) | %.2f | %.0f / %.0f / %.0f |\n", p.Path, p.Address, median(p.ThroughputGbs),
			pct(p.ConnectUs, 50), pct(p.ConnectUs, 90), pct(p.ConnectUs, 99))
	}
	ratio := func(a, b Result) (float64, float64) {
		return median(a.ThroughputGbs) / median(b.ThroughputGbs), pct(a.ConnectUs, 50) / pct(b.ConnectUs, 50)
	}
	if len(r.Paths) >= 2 {
		tp, c := ratio(r.Paths[0], r.Paths[1])
		fmt.Fprintf(md, "\nUser-space tunnel / underlay (samples alternating): throughput **%.2f**, connect p50 **%.2f**.\n", tp, c)
	}
	if len(r.Paths) == 4 {
		tp, c := ratio(r.Paths[2], r.Paths[3])
		fmt.Fprintf(md, "eBPF tunnel / underlay (samples alternating): throughput **%.2f** (goal ≥ 0.7), connect p50 **%.2f** (goal ≤ 1.2).\n", tp, c)
		fmt.Fprintf(md, "eBPF tunnel / user-space tunnel (one run, consecutive phases): throughput **%.1f×** (goal ≥ 10×).\n",
			median(r.Paths[2].ThroughputGbs)/median(r.Paths[0].ThroughputGbs))
	}
	fmt.Fprintf(md, "\nFirst connection to a service no node had asked about (the cluster query on its path): **%.0f µs**", r.FirstConnectUs)
	if r.FirstConnectUs < 1e6 {
		md.WriteString(", under the 1 s SYN retransmission timeout: the first SYN got through.\n")
	} else {
		md.WriteString(": the first SYN was retransmitted.\n")
	}
}
