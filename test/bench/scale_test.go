package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/test/nstest"
)

const (
	scaleDeploys = 5 // deploys timed per row and module count
	scaleLoads   = 3 // loads of the three modules timed per row
)

var scaleSizes = []int{1, 10, 50}

// BenchmarkScale runs once (-benchtime 1x) and writes the markdown section
// $BENCH_SCALE_OUT (and its JSON beside it): with 1, 10 and 50 services
// deployed on a real NetManager, the time to deploy one more service with
// no module, one (the packet counter) and three (packet counter, firewall
// with 100 rules, eBPF proxy) loaded — the eBPF Manager attaches every
// loaded module to the new veth before the deploy answers — and the time
// to load each module onto the services already there.
func BenchmarkScale(b *testing.B) {
	nstest.RequireRoot()
	out := os.Getenv("BENCH_SCALE_OUT")
	if out == "" {
		b.Fatal("BENCH_SCALE_OUT must name the markdown file to write (make bench sets it)")
	}
	n := newNode(b)
	extra := nstest.NewNetns(b, "nm-bench-x")
	xpid := extra.StartProcess(b)
	var rows []ScaleRow
	deployed := 0
	for _, size := range scaleSizes {
		for ; deployed < size; deployed++ {
			ns := nstest.NewNetns(b, "nm-bench-s")
			n.deploy(b, ns.StartProcess(b), fmt.Sprintf("scale.ns.s%d.ns", deployed))
		}
		row := ScaleRow{Services: size, Deploy: map[int][]float64{}, Load: map[string][]float64{}}
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
		b.Logf("%d services: deploy %v ms, load %v ms", size, row.Deploy, row.Load)
		rows = append(rows, row)
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
	last := rows[len(rows)-1]
	b.ReportMetric(median(last.Deploy[3]), fmt.Sprintf("deploy-ms@%dsvc,3mod", last.Services))
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
