package bench

import (
	"fmt"
	"strings"
)

// ProgCost is one module's data-plane cost on the service veth's TC ingress
// hook (traffic leaving the client) from the kernel's run-time statistics
// (bpf_stats) over live traffic: the module loaded alone and as part of the
// chain, one value per sample.
type ProgCost struct {
	Module  string    `json:"module"`
	AloneNs []float64 `json:"aloneNsPerPacket"` // Δrun_time/Δrun_cnt
	ChainNs []float64 `json:"chainNsPerPacket"`
}

// RateCost is the programs' cost at one packet rate.
type RateCost struct {
	TargetPPS int        `json:"targetPacketsPerSecond"`
	Runs      []uint64   `json:"chainRuns"`       // packets per chain sample (the first program's Δrun_cnt)
	Progs     []ProgCost `json:"programs"`        // in chain order
	NoopNs    []float64  `json:"noopNsPerPacket"` // a no-op program alone on the hook
}

// ChainResult is what BenchmarkChain measures.
type ChainResult struct {
	Rates     []RateCost `json:"rates"`
	SampleSec float64    `json:"sampleSeconds"`
	Rules     int        `json:"firewallRules"`
	// TestRunNs: the median of one-repeat BPF_PROG_TEST_RUNs of each live
	// program (its live maps) on a copy of the flow's packet; "noop" too.
	TestRunNs map[string]float64 `json:"testRunNs"`
	// Paths: bare (nothing loaded, the server's namespace IP), the eBPF
	// proxy alone and the whole chain (both by the service IP).
	Paths []Result `json:"paths"`
}

// Sums are the chain's total and the sum of its modules alone (medians).
func (r RateCost) Sums() (chain, alone float64) {
	for _, p := range r.Progs {
		chain += median(p.ChainNs)
		alone += median(p.AloneNs)
	}
	return chain, alone
}

// PPS is the packet rate the chain samples reached.
func (r RateCost) PPS(sampleSec float64) float64 {
	var v []float64
	for _, n := range r.Runs {
		v = append(v, float64(n)/sampleSec)
	}
	return median(v)
}

// RenderChain returns the whole-chain section's tables.
func RenderChain(r ChainResult) string {
	var md strings.Builder
	md.WriteString("| program (TC ingress of the client's veth) |")
	for _, rc := range r.Rates {
		fmt.Fprintf(&md, " %.0f kpps: alone | in the chain |", rc.PPS(r.SampleSec)/1000)
	}
	md.WriteString(" BPF_PROG_TEST_RUN (net of the no-op) |\n|---|" + strings.Repeat("---|---|", len(r.Rates)) + "---|\n")
	for i, m := range ChainModules {
		fmt.Fprintf(&md, "| %s |", m)
		for _, rc := range r.Rates {
			if i < len(rc.Progs) {
				fmt.Fprintf(&md, " %.1f | %.1f |", median(rc.Progs[i].AloneNs), median(rc.Progs[i].ChainNs))
			}
		}
		fmt.Fprintf(&md, " %.1f (%.1f) |\n", r.TestRunNs[m], r.TestRunNs[m]-r.TestRunNs["noop"])
	}
	md.WriteString("| **sum** |")
	for _, rc := range r.Rates {
		chain, alone := rc.Sums()
		fmt.Fprintf(&md, " **%.1f** | **%.1f** |", alone, chain)
	}
	md.WriteString(" |\n| no-op (alone on the hook; the test run's harness) |")
	for _, rc := range r.Rates {
		fmt.Fprintf(&md, " %.1f | |", median(rc.NoopNs))
	}
	fmt.Fprintf(&md, " %.1f |\n\n", r.TestRunNs["noop"])
	for _, rc := range r.Rates {
		chain, alone := rc.Sums()
		verdict := "met"
		if alone == 0 || chain/alone > 1.1 {
			verdict = "not met"
		}
		fmt.Fprintf(&md, "- at %.0f packets/s (paced for %d): chain / sum of the modules alone **%s** (goal ≤ 1.1: %s); chain sums per sample: %s ns\n",
			rc.PPS(r.SampleSec), rc.TargetPPS, ratio(chain, alone), verdict, perSample(rc))
	}
	if len(r.Paths) > 0 {
		md.WriteString("\n| path | TCP Gbit/s (median) | runs |\n|---|---|---|\n")
		for _, p := range r.Paths {
			fmt.Fprintf(&md, "| %s (%s) | %.2f | %s |\n", p.Path, p.Address, median(p.ThroughputGbs), floats(p.ThroughputGbs, "%.2f"))
		}
		if len(r.Paths) == 3 {
			bare, px, ch := median(r.Paths[0].ThroughputGbs), median(r.Paths[1].ThroughputGbs), median(r.Paths[2].ThroughputGbs)
			fmt.Fprintf(&md, "\nThroughput, chain / bare: **%s**; chain / eBPF proxy alone: **%s**; eBPF proxy alone / bare: %s.\n",
				ratio(ch, bare), ratio(ch, px), ratio(px, bare))
		}
	}
	return md.String()
}

// perSample lists the chain's sum sample by sample.
func perSample(r RateCost) string {
	var v []float64
	for i := 0; len(r.Progs) > 0 && i < len(r.Progs[0].ChainNs); i++ {
		s := 0.0
		for _, p := range r.Progs {
			if i < len(p.ChainNs) {
				s += p.ChainNs[i]
			}
		}
		v = append(v, s)
	}
	return floats(v, "%.0f")
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func floats(v []float64, format string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(s, ", ")
}

// ScaleRow is what BenchmarkScale measures with Services deployed:
// milliseconds per operation, one value per repetition.
type ScaleRow struct {
	Mode     string `json:"tcMode"` // the configuration: tcx, tcx-normal-rcu (--expedite-attach=false) or legacy
	Services int    `json:"services"`
	// Deploy[k]: POST /container/deploy of one more service with k modules
	// loaded (0, 1, 3), to its answer (the manager attaches before it).
	Deploy map[int][]float64 `json:"deployMs"`
	// Load[name]: POST /ebpf of that module onto the Services veths (the
	// firewall with the packet counter loaded, the proxy with both).
	Load map[string][]float64 `json:"loadMs"`
}

// ChainModules are the modules BenchmarkChain chains and BenchmarkScale
// loads, in chain (priority) order.
var ChainModules = []string{"packetcounter", "firewall", "proxy"}

// RenderScale returns the attach/deploy-time section's tables.
func RenderScale(rows []ScaleRow) string {
	var md strings.Builder
	md.WriteString("| tc mode | services deployed | deploy one more: no module | 1 module | 3 modules | 3 − 0 modules |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		d0, d1, d3 := median(r.Deploy[0]), median(r.Deploy[1]), median(r.Deploy[3])
		fmt.Fprintf(&md, "| %s | %d | %.1f ms | %.1f ms | %.1f ms | %.1f ms |\n", r.Mode, r.Services, d0, d1, d3, d3-d0)
	}
	md.WriteString("\n| tc mode | services deployed | load packetcounter (nothing else loaded) | per veth | load firewall (1 loaded) | load proxy (2 loaded) |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		pc := median(r.Load["packetcounter"])
		fmt.Fprintf(&md, "| %s | %d | %.1f ms | %.2f ms | %.1f ms | %.1f ms |\n", r.Mode, r.Services, pc, pc/float64(max(r.Services, 1)),
			median(r.Load["firewall"]), median(r.Load["proxy"]))
	}
	md.WriteString(scaleGoals(rows))
	md.WriteString("\nAll runs (ms):\n\n")
	for _, r := range rows {
		fmt.Fprintf(&md, "- %s, %d service(s): deploy with 0 / 1 / 3 modules: %s / %s / %s; load", r.Mode, r.Services,
			floats(r.Deploy[0], "%.1f"), floats(r.Deploy[1], "%.1f"), floats(r.Deploy[3], "%.1f"))
		for i, m := range ChainModules {
			sep := ","
			if i == 0 {
				sep = ""
			}
			fmt.Fprintf(&md, "%s %s: %s", sep, m, floats(r.Load[m], "%.1f"))
		}
		md.WriteString("\n")
	}
	return md.String()
}

// Issue 24's goals at 500 services: every module's load onto them, and a
// deploy with 3 modules loaded over one with none.
const (
	scaleGoalServices = 500
	scaleGoalLoadMs   = 2000.0
	scaleGoalDeployMs = 20.0
)

// scaleGoals says, per configuration measured at 500 services, whether
// each goal is met.
func scaleGoals(rows []ScaleRow) string {
	var md strings.Builder
	for _, r := range rows {
		if r.Services != scaleGoalServices {
			continue
		}
		if md.Len() == 0 {
			fmt.Fprintf(&md, "\nGoals at %d services: each load ≤ %.0f ms, deploy with 3 modules ≤ +%.0f ms over none.\n\n", scaleGoalServices, scaleGoalLoadMs, scaleGoalDeployMs)
		}
		d := median(r.Deploy[3]) - median(r.Deploy[0])
		fmt.Fprintf(&md, "- %s: deploy +%.1f ms (%s)", r.Mode, d, metOrNot(d <= scaleGoalDeployMs))
		for _, m := range ChainModules {
			l := median(r.Load[m])
			fmt.Fprintf(&md, "; load %s %.0f ms (%s)", m, l, metOrNot(l <= scaleGoalLoadMs))
		}
		md.WriteString("\n")
	}
	return md.String()
}

func metOrNot(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}
