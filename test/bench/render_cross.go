package bench

import (
	"fmt"
	"strings"
)

// CrossResult is what BenchmarkCrossNode measures.
type CrossResult struct {
	Paths          []Result `json:"paths"`                    // tunnel (by service IP), underlay (plain routing)
	FirstConnectUs float64  `json:"firstConnectMicroseconds"` // to a service never asked about
}

// RenderCross returns the cross-node section of docs/benchmarks.md.
func RenderCross(r CrossResult) string {
	var md strings.Builder
	md.WriteString("| path | TCP Gbit/s (median of 3) | connect p50 / p90 / p99 µs (500) |\n|---|---|---|\n")
	for _, p := range r.Paths {
		fmt.Fprintf(&md, "| %s (%s) | %.2f | %.0f / %.0f / %.0f |\n", p.Path, p.Address, median(p.ThroughputGbs),
			pct(p.ConnectUs, 50), pct(p.ConnectUs, 90), pct(p.ConnectUs, 99))
	}
	if len(r.Paths) == 2 && median(r.Paths[1].ThroughputGbs) > 0 {
		fmt.Fprintf(&md, "\nTunnel / underlay throughput: **%.2f**; connect p50: **%.2f**.\n",
			median(r.Paths[0].ThroughputGbs)/median(r.Paths[1].ThroughputGbs), pct(r.Paths[0].ConnectUs, 50)/pct(r.Paths[1].ConnectUs, 50))
	}
	fmt.Fprintf(&md, "\nFirst connection to a service no node had asked about (the cluster query on its path): **%.0f µs**", r.FirstConnectUs)
	if r.FirstConnectUs < 1e6 {
		md.WriteString(", under the 1 s SYN retransmission timeout: the first SYN got through.\n")
	} else {
		md.WriteString(": the first SYN was retransmitted.\n")
	}
	return md.String()
}
