package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/test/nstest"
)

// BenchmarkRestart runs once (-benchtime 1x) and writes the markdown section
// $BENCH_RESTART_OUT: three module instances (firewall, packet counter,
// eBPF proxy) on 50 service veths; a UDP stream between two of the
// services, through all three, across a restart with persist after a
// SIGTERM and after a kill -9; how long until the API answers again, and
// what PUT /ebpf/{id} takes per attached veth.
func BenchmarkRestart(b *testing.B) {
	nstest.RequireRoot()
	out := os.Getenv("BENCH_RESTART_OUT")
	if out == "" {
		b.Fatal("BENCH_RESTART_OUT must name the markdown file to write (make bench sets it)")
	}
	root, _ := filepath.Abs("../..")
	nm := bin(b, "NETMANAGER_BIN", "github.com/oakestra/netmanager/node-net-manager/cmd/netmanager")
	node := nstest.NewNetns(b, "nm-bench-node")
	state := "--state-dir=" + b.TempDir()
	mods := filepath.Join(root, "build", "modules")
	d := nstest.StartDaemon(b, nm, node, "--modules-dir", mods, state, "--persist", "--log-level", "info")
	pins := d.PinDir
	const services = 50
	var nss []*nstest.Netns
	var ips []string
	for i := 0; i < services; i++ {
		ns := nstest.NewNetns(b, "nm-bench-s")
		body := fmt.Appendf(nil, `{"pid": %d, "serviceName": "app.ns.s%d.ns", "instanceNumber": 0}`, ns.StartProcess(b), i)
		code, o, err := d.Client.Raw(b.Context(), "POST", "/container/deploy", body)
		var r struct{ NsAddress string }
		if err != nil || code != 200 || json.Unmarshal(o, &r) != nil {
			b.Fatalf("deploy %d: %d %s %v", i, code, o, err)
		}
		nss, ips = append(nss, ns), append(ips, r.NsAddress)
	}
	var fwID string
	for _, body := range []string{`{"name": "firewall", "priority": 10, "config": {"rules": [{"action": "deny", "proto": "icmp"}]}}`,
		`{"name": "packetcounter", "priority": 20}`, `{"name": "proxy", "priority": 30}`} {
		code, o, err := d.Client.Raw(b.Context(), "POST", "/ebpf", []byte(body))
		var info struct{ ID string }
		if err != nil || code != 200 || json.Unmarshal(o, &info) != nil {
			b.Fatalf("load %s: %d %s %v", body, code, o, err)
		}
		if fwID == "" {
			fwID = info.ID
		}
	}
	counter := nstest.CountUDP(b, nss[1], ":7000")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sent := nstest.SendUDP(b, ctx, nss[0], ips[1]+":7000", time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	var rows []string
	for _, how := range []string{"SIGTERM", "kill -9"} {
		if how == "SIGTERM" {
			d.Stop(b)
		} else {
			d.Kill(b)
		}
		start := time.Now()
		d = nstest.StartDaemon(b, nm, node, "--modules-dir", mods, state, "--persist", "--pin-dir", pins, "--log-level", "info")
		took := time.Since(start)
		var list []struct {
			Readopted   bool
			Attachments []json.RawMessage
			Drift       []string
		}
		if err := d.Client.Do(b.Context(), "GET", "/ebpf", nil, &list); err != nil || len(list) != 3 {
			b.Fatalf("after the restart: %+v %v", list, err)
		}
		links := 0
		for _, in := range list {
			links += len(in.Attachments)
			if !in.Readopted || len(in.Drift) != 0 {
				b.Fatalf("after the restart: %+v", in)
			}
		}
		rows = append(rows, fmt.Sprintf("| restart after %s: API answering again | %.0f ms | %d programs adopted in place |", how, float64(took.Microseconds())/1000, links))
	}
	var swaps []string
	for i := 0; i < 3; i++ {
		body := fmt.Appendf(nil, `{"config": {"rules": [{"action": "deny", "proto": "icmp"}, {"id": "r%d", "action": "deny", "proto": "tcp", "dstPorts": "%d"}]}}`, i, 9000+i)
		start := time.Now()
		code, o, err := d.Client.Raw(b.Context(), "PUT", "/ebpf/"+fwID, body)
		took := time.Since(start)
		if err != nil || code != 200 {
			b.Fatalf("PUT: %d %s %v", code, o, err)
		}
		swaps = append(swaps, fmt.Sprintf("%.2f", float64(took.Microseconds())/1000/services))
	}
	time.Sleep(200 * time.Millisecond)
	stop()
	total := sent()
	time.Sleep(200 * time.Millisecond)
	got := counter.Got()
	rows = append(rows, fmt.Sprintf("| PUT /ebpf/{id} (firewall, new rules), 3 runs | %s ms per veth | %d veths, both hooks |", strings.Join(swaps, ", "), services),
		fmt.Sprintf("| UDP datagrams lost by the data path across both restarts and the updates | %d of %d | one every ms |", total-uint64(got), total))
	md := "| what | figure | notes |\n|---|---|---|\n" + strings.Join(rows, "\n") + "\n"
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		b.Fatal(err)
	}
	fmt.Print(md)
	d.Stop(b)
	d = nstest.StartDaemon(b, nm, node, "--modules-dir", mods, state, "--pin-dir", pins, "--log-level", "info")
	d.Stop(b)
}
