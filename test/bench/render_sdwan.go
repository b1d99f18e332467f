package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// SDWANResult is what BenchmarkSDWAN measures on docs/sdwan.md's two sites.
type SDWANResult struct {
	OverlayGbs []float64 `json:"overlayGbitPerS"` // iperf3 TCP A→B over the GRE overlay (WAN 1)
	PlainGbs   []float64 `json:"plainGbitPerS"`   // the same, routed by the kernel (a PASS rule)
	// WAN 1 cut → reported down on A, and → first bytes over WAN 2, by
	// how it is cut: "link down" (B's end; A's loses carrier) or "drop"
	// (an eBPF program on B's end drops both ways; no carrier change).
	DetectMs   map[string][]float64 `json:"detectMs"`
	FailoverMs map[string][]float64 `json:"failoverMs"`
	Resets     int                  `json:"resets"`                  // streams that ended in an error
	UpdateUs   []float64            `json:"updateMicroseconds"`      // back to back
	PacedUs    []float64            `json:"updatePacedMicroseconds"` // one every millisecond
	ListUs     []float64            `json:"listMicroseconds"`        // List, back to back: the transport alone
	// Rates: UDP flood packet rates by direction and frame size, over the
	// overlay and routed plainly (sdwan_pps_test.go).
	Rates []SDWANRate `json:"packetRates"`
}

// RenderSDWAN returns the SD-WAN section of docs/benchmarks.md and draws the
// CDF of gRPC rule-update latencies into dir (bench-sdwan-update-cdf.png).
func RenderSDWAN(r SDWANResult, dir string) (string, error) {
	var md strings.Builder
	ov, pl := median(r.OverlayGbs), median(r.PlainGbs)
	fmt.Fprintf(&md, "| measure | figure | goal |\n|---|---|---|\n")
	fmt.Fprintf(&md, "| TCP A→B over the GRE overlay (WAN 1), median of %d | %.2f Gbit/s | |\n", len(r.OverlayGbs), ov)
	fmt.Fprintf(&md, "| TCP A→B routed by the kernel through the same gateways, median of %d | %.2f Gbit/s | |\n", len(r.PlainGbs), pl)
	fmt.Fprintf(&md, "| overlay / plain | **%.2f** | ≥ 0.7 |\n", ov/pl)
	for _, x := range r.Rates {
		o, p := median(x.OverlayPPS), median(x.PlainPPS)
		how := "A encapsulates"
		if x.Dir == "downlink" {
			how = "B decapsulates"
		}
		fmt.Fprintf(&md, "| UDP %s (%s), %d B frames, overlay / plain, median of %d | %.0f / %.0f kpps = **%.2f** | ≥ 0.8 |\n",
			x.Dir, how, x.Frame, len(x.OverlayPPS), o/1e3, p/1e3, o/p)
	}
	cuts := 0
	for _, how := range []string{"link down", "drop"} {
		f, d := r.FailoverMs[how], r.DetectMs[how]
		if len(f) == 0 {
			continue
		}
		cuts += len(f)
		fmt.Fprintf(&md, "| WAN 1 cut (%s) → first bytes over WAN 2, median / max of %d | **%.0f / %.0f ms** | ≤ 1000 ms |\n",
			how, len(f), median(f), slices.Max(f))
		fmt.Fprintf(&md, "| WAN 1 cut (%s) → reported down, median / max | %.0f / %.0f ms | |\n", how, median(d), slices.Max(d))
	}
	fmt.Fprintf(&md, "| TCP streams reset by a cut | **%d of %d** | 0 |\n", r.Resets, cuts)
	for _, u := range []struct {
		how string
		v   []float64
	}{{"back to back", r.UpdateUs}, {"one per ms", r.PacedUs}} {
		fmt.Fprintf(&md, "| gRPC rule update (%s) p50 / p90 / p99 / max, %d updates | **%.0f / %.0f / %.0f / %.0f µs** | p50 ≤ 200, p99 ≤ 1000 |\n",
			u.how, len(u.v), pct(u.v, 50), pct(u.v, 90), pct(u.v, 99), slices.Max(u.v))
	}
	fmt.Fprintf(&md, "| gRPC List (back to back; no map written) p50 / p90 / p99, %d calls | %.0f / %.0f / %.0f µs | |\n",
		len(r.ListUs), pct(r.ListUs, 50), pct(r.ListUs, 90), pct(r.ListUs, 99))
	md.WriteString("\n![gRPC rule update latency CDF](bench-sdwan-update-cdf.png)\n")

	var lines []string
	for _, u := range []struct {
		name, title string
		v           []float64
	}{{"b2b", "back to back", r.UpdateUs}, {"paced", "one per ms", r.PacedUs}} {
		v := append([]float64(nil), u.v...)
		slices.Sort(v)
		var dat strings.Builder
		for i, x := range v {
			fmt.Fprintf(&dat, "%f %f\n", x/1000, float64(i+1)/float64(len(v)))
		}
		df := filepath.Join(dir, "sdwan-update-"+u.name+".dat")
		if err := os.WriteFile(df, []byte(dat.String()), 0o644); err != nil {
			return "", err
		}
		defer os.Remove(df)
		lines = append(lines, fmt.Sprintf("'%s' using 1:2 with lines lw 2 title '%s'", df, u.title))
	}
	script := fmt.Sprintf(`set terminal png size 800,480
set output '%s'
set title 'SD-WAN rule update over gRPC (request sent to reply), %d updates'
set xlabel 'milliseconds'
set ylabel 'fraction of updates'
set logscale x
set key bottom right
set grid
plot %s
`, filepath.Join(dir, "bench-sdwan-update-cdf.png"), len(r.UpdateUs), strings.Join(lines, ", "))
	sp := filepath.Join(dir, "sdwan-plot.gp")
	if err := os.WriteFile(sp, []byte(script), 0o644); err != nil {
		return "", err
	}
	defer os.Remove(sp)
	if out, err := exec.Command("gnuplot", sp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("gnuplot: %v: %s", err, out)
	}
	return md.String(), nil
}

// SDWANRate is one direction at one frame size.
type SDWANRate struct {
	Dir        string    `json:"dir"` // "uplink" (A encapsulates) or "downlink" (B decapsulates)
	Frame      int       `json:"frameBytes"`
	OverlayPPS []float64 `json:"overlayPps"`
	PlainPPS   []float64 `json:"plainPps"`
}
