package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Result is one path's measurements.
type Result struct {
	Path          string    `json:"path"`
	Address       string    `json:"address"`
	ThroughputGbs []float64 `json:"throughputGbitPerS"` // iperf3 TCP, one value per run
	ConnectUs     []float64 `json:"connectMicroseconds"`
	JitterMs      float64   `json:"jitterMs"` // iperf3 UDP at 1 Mbit/s
	CPUPercent    float64   `json:"cpuPercentAt100Mbit"`
}

func median(v []float64) float64 { return pct(v, 50) }

func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// Render writes the service-path section of docs/benchmarks.md (returned as
// markdown) and its plots into dir: a CDF of connect times and a bar chart of
// throughput, drawn by gnuplot.
func Render(results []Result, dir string) (string, error) {
	var md strings.Builder
	byPath := map[string]Result{}
	for _, r := range results {
		byPath[r.Path] = r
	}
	d, u, e := byPath["direct"], byPath["userspace-proxy"], byPath["ebpf-proxy"]
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	md.WriteString("| path | TCP Gbit/s (median of 3) | connect p50 / p90 / p99 µs | UDP jitter ms (1 Mbit/s) | CPU % of a core at 100 Mbit/s (median of 5) |\n|---|---|---|---|---|\n")
	for _, r := range []Result{d, u, e} {
		fmt.Fprintf(&md, "| %s | %.2f | %.1f / %.1f / %.1f | %.3f | %.1f |\n", r.Path, median(r.ThroughputGbs),
			pct(r.ConnectUs, 50), pct(r.ConnectUs, 90), pct(r.ConnectUs, 99), r.JitterMs, r.CPUPercent)
	}
	fmt.Fprintf(&md, "\nRatios (goals from the issue in brackets):\n\n")
	fmt.Fprintf(&md, "- eBPF proxy throughput / direct: **%s** (≥ 0.9); eBPF / user-space: **%s** (≥ 20)\n", ratio(median(e.ThroughputGbs), median(d.ThroughputGbs)), ratio(median(e.ThroughputGbs), median(u.ThroughputGbs)))
	fmt.Fprintf(&md, "- eBPF proxy connect p50 / direct: **%s** (≤ 1.1); user-space / direct: %s\n", ratio(pct(e.ConnectUs, 50), pct(d.ConnectUs, 50)), ratio(pct(u.ConnectUs, 50), pct(d.ConnectUs, 50)))
	fmt.Fprintf(&md, "- CPU at 100 Mbit/s, eBPF / user-space: **%s** (≤ 0.3)\n\n", ratio(e.CPUPercent, u.CPUPercent))
	md.WriteString("![connect time CDF](bench-connect-cdf.png)\n![throughput](bench-throughput.png)\n")

	// Data files and the gnuplot script.
	var plotLines []string
	for _, r := range []Result{d, u, e} {
		s := append([]float64(nil), r.ConnectUs...)
		sort.Float64s(s)
		var b strings.Builder
		for i, v := range s {
			fmt.Fprintf(&b, "%f %f\n", v, float64(i+1)/float64(len(s)))
		}
		f := filepath.Join(dir, "cdf-"+r.Path+".dat")
		if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
			return "", err
		}
		plotLines = append(plotLines, fmt.Sprintf("'%s' using 1:2 with lines lw 2 title '%s'", f, r.Path))
	}
	bars := filepath.Join(dir, "throughput.dat")
	var b strings.Builder
	for _, r := range []Result{d, u, e} {
		fmt.Fprintf(&b, "%s %f\n", r.Path, median(r.ThroughputGbs))
	}
	if err := os.WriteFile(bars, []byte(b.String()), 0o644); err != nil {
		return "", err
	}
	script := fmt.Sprintf(`set terminal png size 800,480
set output '%s'
set title 'TCP connect time (SYN to established), 500 samples per path'
set xlabel 'microseconds'
set ylabel 'fraction of connections'
set logscale x
set key bottom right
set grid
plot %s
unset logscale x
set output '%s'
set title 'TCP throughput (iperf3, median of 3 runs)'
set xlabel ''
set ylabel 'Gbit/s'
set style data histograms
set style fill solid 0.6
set boxwidth 0.6
set yrange [0:*]
unset key
plot '%s' using 2:xtic(1)
`, filepath.Join(dir, "bench-connect-cdf.png"), strings.Join(plotLines, ", "), filepath.Join(dir, "bench-throughput.png"), bars)
	sp := filepath.Join(dir, "plots.gp")
	if err := os.WriteFile(sp, []byte(script), 0o644); err != nil {
		return "", err
	}
	if out, err := exec.Command("gnuplot", sp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("gnuplot: %v: %s", err, out)
	}
	for _, f := range []string{"plots.gp", "throughput.dat"} {
		os.Remove(filepath.Join(dir, f))
	}
	for _, r := range results {
		os.Remove(filepath.Join(dir, "cdf-"+r.Path+".dat"))
	}
	return md.String(), nil
}
