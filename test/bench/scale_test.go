package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/test/nstest"
)

const (
	scaleDeploys = 5 // deploys timed per row and module count
	scaleLoads   = 3 // loads of the three modules timed per row
)

var scaleSizes = []int{1, 50, 500}

// scaleModes are the daemon configurations BenchmarkScale compares: TCX
// links with the default expediteAttach (each attach and detach inside a
// window of expedited RCU grace periods), TCX links each waiting a normal
// grace period (--expedite-attach=false: how every release before it
// attached), and legacy clsact/cls_bpf filters (no grace period).
var scaleModes = []struct {
	name string
	args []string
}{
	{"tcx", []string{"--tc-mode", "tcx"}},
	{"tcx-normal-rcu", []string{"--tc-mode", "tcx", "--expedite-attach=false"}},
	{"legacy", []string{"--tc-mode", "legacy"}},
}

// BenchmarkScale runs once (-benchtime 1x) and writes the markdown section
// $BENCH_SCALE_OUT (and its JSON beside it): for each tc mode, with 1, 50
// and 500 services deployed on a real NetManager, the time to deploy one
// more service with no module, one (the packet counter) and three (packet
// counter, firewall with 100 rules, eBPF proxy) loaded — the eBPF Manager
// attaches every loaded module to the new veth before the deploy answers —
// and the time to load each module onto the services already there.
// $BENCH_SCALE_SIZES ("1,50") overrides the sizes.
func BenchmarkScale(b *testing.B) {
	nstest.RequireRoot()
	out := os.Getenv("BENCH_SCALE_OUT")
	if out == "" {
		b.Fatal("BENCH_SCALE_OUT must name the markdown file to write (make bench sets it)")
	}
	sizes := scaleSizes
	if v := os.Getenv("BENCH_SCALE_SIZES"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("BENCH_SCALE_SIZES: %q is not a positive number", f)
			}
			sizes = append(sizes, n)
		}
	}
	var rows []ScaleRow
	for _, mode := range scaleModes {
		b.Run(mode.name, func(b *testing.B) { rows = append(rows, scaleRows(b, mode.name, mode.args, sizes)...) })
	}
	md := RenderScale(rows)
	data, _ := json.MarshalIndent(rows, "", "  ")
	if err := os.WriteFile(strings.TrimSuffix(out, ".md")+".json", data, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		b.Fatal(err)
	}
	os.Stdout.WriteString(md)
	for _, r := range rows {
		if r.Services == sizes[len(sizes)-1] {
			b.ReportMetric(median(r.Deploy[3])-median(r.Deploy[0]), fmt.Sprintf("%s-deploy+3mod-ms@%dsvc", r.Mode, r.Services))
			b.ReportMetric(median(r.Load["packetcounter"]), fmt.Sprintf("%s-load-ms@%dsvc", r.Mode, r.Services))
		}
	}
}

// scaleRows measures one configuration (mode: its name; args: the daemon's
// flags) on a node of its own, its services deployed up to each size in
// turn.
func scaleRows(b *testing.B, mode string, args []string, sizes []int) []ScaleRow {
	// A /24 holds 253 services: the node gets a /22.
	cfg := filepath.Join(b.TempDir(), "netmanager.json")
	if err := os.WriteFile(cfg, []byte(`{"nodeSubnet": "10.18.0.0/22"}`), 0o644); err != nil {
		b.Fatal(err)
	}
	n := newNodeArgs(b, append([]string{"--config", cfg}, args...)...)
	extra := nstest.NewNetns(b, "nm-bench-x")
	xpid := extra.StartProcess(b)
	var rows []ScaleRow
	deployed := 0
	for _, size := range sizes {
		start := time.Now()
		for ; deployed < size; deployed++ {
			ns := nstest.NewNetns(b, "nm-bench-s")
			n.deploy(b, ns.StartProcess(b), fmt.Sprintf("scale.ns.s%d.ns", deployed))
		}
		b.Logf("%s: %d services deployed in %v", mode, size, time.Since(start))
		row := ScaleRow{Mode: mode, Services: size, Deploy: map[int][]float64{}, Load: map[string][]float64{}}
		row.Deploy[0] = n.deployTimes(b, xpid)
		for i := 0; i < scaleLoads; i++ {
			for j, m := range ChainModules {
				row.Load[m] = append(row.Load[m], ms(func() { n.load(b, m) }))
				if i == 0 && j == 0 {
					row.Deploy[1] = n.deployTimes(b, xpid)
				}
			}
			if i == 0 {
				row.Deploy[3] = n.deployTimes(b, xpid)
			}
			n.unloadAll(b)
		}
		b.Logf("%s, %d services: deploy %v ms, load %v ms", mode, size, row.Deploy, row.Load)
		rows = append(rows, row)
	}
	return rows
}

// deployTimes deploys the container pid as one more service and undeploys
// it again, scaleDeploys times; it returns how long each deploy took (ms).
func (n *node) deployTimes(b *testing.B, pid int) []float64 {
	var v []float64
	for i := 0; i < scaleDeploys; i++ {
		v = append(v, ms(func() { n.deploy(b, pid, "scale.ns.extra.ns") }))
		n.undeploy(b, "scale.ns.extra.ns")
	}
	return v
}

// ms is how long f takes, in milliseconds.
func ms(f func()) float64 {
	start := time.Now()
	f()
	return float64(time.Since(start).Microseconds()) / 1000
}
