package bench

import (
	"strings"
	"testing"
)

func TestRenderChain(t *testing.T) {
	rc := RateCost{TargetPPS: 20000, Runs: []uint64{19000, 21000, 20000},
		NoopNs: []float64{30, 31, 29},
		Progs: []ProgCost{
			{Module: "packetcounter", AloneNs: []float64{100, 110, 90}, ChainNs: []float64{95, 100, 105}},
			{Module: "firewall", AloneNs: []float64{500, 510, 490}, ChainNs: []float64{520, 530, 540}},
			{Module: "proxy", AloneNs: []float64{200, 200, 200}, ChainNs: []float64{230, 240, 250}},
		}}
	if chain, alone := rc.Sums(); chain != 100+530+240 || alone != 100+500+200 {
		t.Fatalf("sums %v %v", chain, alone)
	}
	r := ChainResult{Rates: []RateCost{rc}, SampleSec: 1, Rules: 100,
		TestRunNs: map[string]float64{"noop": 90, "packetcounter": 140, "firewall": 640, "proxy": 230},
		Paths: []Result{{Path: "bare", Address: "10.18.0.3", ThroughputGbs: []float64{10, 12, 11}},
			{Path: "proxy", Address: "10.30.0.3", ThroughputGbs: []float64{11}},
			{Path: "chain", Address: "10.30.0.3", ThroughputGbs: []float64{9.9}}}}
	md := RenderChain(r)
	for _, want := range []string{
		"| 20 kpps: alone | in the chain |",
		"| packetcounter | 100.0 | 100.0 | 140.0 (50.0) |",
		"| firewall | 500.0 | 530.0 | 640.0 (550.0) |",
		"| **sum** | **800.0** | **870.0** |",
		"| no-op (alone on the hook; the test run's harness) | 30.0 | | 90.0 |",
		"chain / sum of the modules alone **1.09** (goal ≤ 1.1: met); chain sums per sample: 845, 870, 895 ns",
		"| bare (10.18.0.3) | 11.00 | 10.00, 12.00, 11.00 |",
		"Throughput, chain / bare: **0.90**; chain / eBPF proxy alone: **0.90**",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("missing %q in\n%s", want, md)
		}
	}
	r.Rates[0].Progs[2].ChainNs = []float64{400}
	if md := RenderChain(r); !strings.Contains(md, "(goal ≤ 1.1: not met)") {
		t.Errorf("a ratio over 1.1 must say not met:\n%s", md)
	}
}

func TestRenderScale(t *testing.T) {
	rows := []ScaleRow{{Mode: "tcx", Services: 10,
		Deploy: map[int][]float64{0: {50, 40, 60}, 1: {70}, 3: {120, 110, 130}},
		Load:   map[string][]float64{"packetcounter": {200, 210}, "firewall": {300}, "proxy": {400}}}}
	md := RenderScale(rows)
	for _, want := range []string{
		"| tcx | 10 | 50.0 ms | 70.0 ms | 120.0 ms | 70.0 ms |",
		"| tcx | 10 | 200.0 ms | 20.00 ms | 300.0 ms | 400.0 ms |",
		"- tcx, 10 service(s): deploy with 0 / 1 / 3 modules: 50.0, 40.0, 60.0 / 70.0 / 120.0, 110.0, 130.0; load packetcounter: 200.0, 210.0, firewall: 300.0, proxy: 400.0",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("missing %q in\n%s", want, md)
		}
	}
}

func TestRenderScaleGoals(t *testing.T) {
	rows := []ScaleRow{
		{Mode: "tcx", Services: 500, Deploy: map[int][]float64{0: {30}, 3: {45}},
			Load: map[string][]float64{"packetcounter": {400}, "firewall": {1999}, "proxy": {2001}}},
		{Mode: "legacy", Services: 500, Deploy: map[int][]float64{0: {30}, 3: {51}},
			Load: map[string][]float64{"packetcounter": {400}, "firewall": {400}, "proxy": {400}}},
		{Mode: "tcx", Services: 50, Deploy: map[int][]float64{0: {30}, 3: {90}}},
	}
	md := RenderScale(rows)
	for _, want := range []string{
		"- tcx: deploy +15.0 ms (met); load packetcounter 400 ms (met); load firewall 1999 ms (met); load proxy 2001 ms (not met)",
		"- legacy: deploy +21.0 ms (not met); load packetcounter 400 ms (met)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("missing %q in\n%s", want, md)
		}
	}
	if strings.Contains(md, "+60.0 ms") {
		t.Errorf("a row of 50 services was held to the goals at 500:\n%s", md)
	}
}
