package bench

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/table"
	"github.com/oakestra/netmanager/test/nstest"
)

func bin(b *testing.B, env, pkg string) string {
	p, err := nstest.Binary(env, pkg, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkServicePaths runs once (-benchtime 1x) and writes $BENCH_OUT.
func BenchmarkServicePaths(b *testing.B) {
	nstest.RequireRoot()
	out := os.Getenv("BENCH_OUT")
	if out == "" {
		b.Fatal("BENCH_OUT must name the JSON file to write (make bench sets it)")
	}
	nm := bin(b, "NETMANAGER_BIN", "github.com/oakestra/netmanager/node-net-manager/cmd/netmanager")
	root, _ := filepath.Abs("../..")
	node := nstest.NewNetns(b, "nm-bench-node")
	d := nstest.StartDaemon(b, nm, node, "--modules-dir", filepath.Join(root, "build", "modules"), "--log-level", "info")
	client, server := nstest.NewNetns(b, "nm-bench-c"), nstest.NewNetns(b, "nm-bench-s")
	cpid, spid := client.StartProcess(b), server.StartProcess(b)
	ctx := b.Context()
	deployNS := func(pid int, name string) api.DeployResponse {
		inst := 0
		r, err := d.Client.Deploy(ctx, deploy.KindContainer, api.DeployBody{PID: &pid, ServiceName: name, InstanceNumber: &inst})
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	deployNS(cpid, "bench.ns.client.ns")
	rs := deployNS(spid, "bench.ns.server.ns")
	recs, _ := d.Client.Services(ctx)
	var rr string
	for _, r := range recs {
		if r.ServiceName == "bench.ns.server.ns" {
			a, _ := (table.Entry{ServiceIPs: r.ServiceIPs}).ServiceIP(table.PolicyRoundRobin)
			rr = a.String()
		}
	}
	iperfd := exec.Command("ip", "netns", "exec", server.Name, "iperf3", "-s")
	if err := iperfd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = iperfd.Process.Kill(); _ = iperfd.Wait() })
	ln := listenIn(b, server, ":7000")
	time.Sleep(300 * time.Millisecond)

	// The user-space proxy first, alone. Then, with the eBPF proxy loaded,
	// direct and eBPF samples alternate, so the machine's noise falls on both
	// alike (the module passes non-service traffic on at once).
	u := Result{Path: "userspace-proxy", Address: rr}
	d0 := Result{Path: "direct", Address: rs.NsAddress}
	e := Result{Path: "ebpf-proxy", Address: rr}
	for i := 0; i < 3; i++ {
		u.ThroughputGbs = append(u.ThroughputGbs, iperfTCP(b, client, rr))
	}
	u.ConnectUs = connectTimes(b, client, net.JoinHostPort(rr, "7000"), 500)
	u.JitterMs = iperfJitter(b, client, rr)
	u.CPUPercent = cpuAt100Mbit(b, client, rr)
	var info struct{ ID string }
	if err := d.Client.Do(ctx, http.MethodPost, "/ebpf", map[string]any{"name": "proxy"}, &info); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		d0.ThroughputGbs = append(d0.ThroughputGbs, iperfTCP(b, client, rs.NsAddress))
		e.ThroughputGbs = append(e.ThroughputGbs, iperfTCP(b, client, rr))
	}
	for i := 0; i < 10; i++ {
		d0.ConnectUs = append(d0.ConnectUs, connectTimes(b, client, net.JoinHostPort(rs.NsAddress, "7000"), 50)...)
		e.ConnectUs = append(e.ConnectUs, connectTimes(b, client, net.JoinHostPort(rr, "7000"), 50)...)
	}
	d0.JitterMs, e.JitterMs = iperfJitter(b, client, rs.NsAddress), iperfJitter(b, client, rr)
	d0.CPUPercent, e.CPUPercent = cpuAt100Mbit(b, client, rs.NsAddress), cpuAt100Mbit(b, client, rr)
	results := []Result{d0, u, e}
	for _, r := range results {
		b.Logf("%s: %.1f Gbit/s, connect p50 %.1f µs, jitter %.3f ms, CPU %.1f%%", r.Path, median(r.ThroughputGbs), pct(r.ConnectUs, 50), r.JitterMs, r.CPUPercent)
	}
	_ = ln.Close()
	data, _ := json.MarshalIndent(results, "", "  ")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		b.Fatal(err)
	}
	md, err := Render(results, filepath.Join(root, "docs"))
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(strings.TrimSuffix(out, ".json")+".md", []byte(md), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, r := range results {
		b.ReportMetric(median(r.ThroughputGbs), r.Path+"-Gbit/s")
	}
}

func listenIn(b *testing.B, ns *nstest.Netns, addr string) net.Listener {
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp4", addr); return }); err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // the client closes first, so TIME_WAIT stays with it
				_, _ = c.Read(make([]byte, 1))
				c.Close()
			}()
		}
	}()
	return ln
}

func iperfJSON(b *testing.B, ns *nstest.Netns, args ...string) map[string]any {
	out, err := ns.Exec(append([]string{"iperf3", "-J"}, args...)...)
	if err != nil {
		b.Fatalf("iperf3 %v: %v\n%s", args, err, out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		b.Fatalf("iperf3 output: %v", err)
	}
	return m
}

func field(m map[string]any, path ...string) float64 {
	var v any = m
	for _, p := range path {
		mm, _ := v.(map[string]any)
		v = mm[p]
	}
	f, _ := v.(float64)
	return f
}

func iperfTCP(b *testing.B, c *nstest.Netns, addr string) float64 {
	m := iperfJSON(b, c, "-c", addr, "-t", "3")
	return field(m, "end", "sum_received", "bits_per_second") / 1e9
}

func iperfJitter(b *testing.B, c *nstest.Netns, addr string) float64 {
	m := iperfJSON(b, c, "-c", addr, "-u", "-b", "1M", "-t", "3")
	return field(m, "end", "sum", "jitter_ms")
}

// cpuAt100Mbit is the whole machine's busy CPU (percent of one core) while
// carrying 100 Mbit/s of TCP: it counts the kernel's work and the user-space
// proxy's alike. The median of five 5-second runs, against the noise of a
// shared machine.
func cpuAt100Mbit(b *testing.B, c *nstest.Netns, addr string) float64 {
	var runs []float64
	cores := float64(runtimeCores())
	for i := 0; i < 5; i++ {
		busy0, total0 := cpuTimes(b)
		iperfJSON(b, c, "-c", addr, "-b", "100M", "-t", "5")
		busy1, total1 := cpuTimes(b)
		runs = append(runs, 100*cores*float64(busy1-busy0)/float64(total1-total0))
	}
	b.Logf("CPU at 100 Mbit/s to %s, %% of a core per run: %.1f", addr, runs)
	return median(runs)
}

func runtimeCores() int {
	out, _ := exec.Command("nproc").Output()
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	if n == 0 {
		n = 1
	}
	return n
}

func cpuTimes(b *testing.B) (busy, total uint64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	// user nice system idle iowait irq softirq steal guest guest_nice: guest
	// time is in user already; steal is time the hypervisor gave another VM
	// (this machine is shared), not work done here.
	f := strings.Fields(strings.SplitN(string(data), "\n", 2)[0])[1:]
	for i, s := range f[:min(len(f), 8)] {
		v, _ := strconv.ParseUint(s, 10, 64)
		total += v
		switch i {
		case 3, 4, 7: // idle, iowait, steal
		default:
			busy += v
		}
	}
	return busy, total
}

// connectTimes measures n TCP connection setups (SYN to established) from ns.
func connectTimes(b *testing.B, c *nstest.Netns, addr string, n int) []float64 {
	var out []float64
	err := c.Do(func() error {
		for i := 0; i < n; i++ {
			start := time.Now()
			conn, err := net.DialTimeout("tcp4", addr, 2*time.Second)
			if err != nil {
				return fmt.Errorf("connect %d to %s: %w", i, addr, err)
			}
			out = append(out, float64(time.Since(start).Nanoseconds())/1e3)
			conn.Close()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return out
}
