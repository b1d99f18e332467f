package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/test/clustersite"
	"github.com/oakestra/netmanager/test/nstest"
)

// BenchmarkCrossNode runs once (-benchtime 1x) and writes $BENCH_CROSS_OUT
// (JSON) and the markdown section beside it: a client on node A, a server
// on node B, through the user-space tunnel by service IP and over plain
// underlay routing to the server's namespace IP, samples alternating.
func BenchmarkCrossNode(b *testing.B) {
	nstest.RequireRoot()
	out := os.Getenv("BENCH_CROSS_OUT")
	if out == "" {
		b.Fatal("BENCH_CROSS_OUT must name the JSON file to write (make bench sets it)")
	}
	root, _ := filepath.Abs("../..")
	nm := bin(b, "NETMANAGER_BIN", "github.com/oakestra/netmanager/node-net-manager/cmd/netmanager")
	ul, _ := clustersite.NewUnderlay(b)
	m := clustersite.NewManager(b, ul, 2)
	var d [2]*nstest.Daemon
	for i := range d {
		ns := nstest.NewNetns(b, "nm-bench-node")
		cfg := clustersite.Join(b, ul, ns, i+1)
		d[i] = nstest.StartDaemon(b, nm, ns, "--modules-dir", filepath.Join(root, "build", "modules"), "--config", cfg, "--log-level", "info")
		body := fmt.Appendf(nil, `{"client_id": "node-%d", "cluster_address": %q}`, i+1, strings.Split(clustersite.BrokerAddr, ":")[0])
		if code, o, err := d[i].Client.Raw(b.Context(), "POST", "/register", body); err != nil || code != 200 {
			b.Fatalf("register: %d %s %v", code, o, err)
		}
	}
	// Plain routing between the node subnets over the underlay.
	d[0].Node.MustExec(b, "ip", "route", "add", "10.18.2.0/24", "via", clustersite.NodeIP(2))
	d[1].Node.MustExec(b, "ip", "route", "add", "10.18.1.0/24", "via", clustersite.NodeIP(1))
	client, server, late := nstest.NewNetns(b, "nm-bench-c"), nstest.NewNetns(b, "nm-bench-s"), nstest.NewNetns(b, "nm-bench-l")
	deploy := func(dm *nstest.Daemon, ns *nstest.Netns, name string) string {
		pid := ns.StartProcess(b)
		body := fmt.Appendf(nil, `{"pid": %d, "serviceName": %q, "instanceNumber": 0}`, pid, name)
		code, o, err := dm.Client.Raw(b.Context(), "POST", "/container/deploy", body)
		var r struct{ NsAddress string }
		if err != nil || code != 200 || json.Unmarshal(o, &r) != nil {
			b.Fatalf("deploy %s: %d %s %v", name, code, o, err)
		}
		return r.NsAddress
	}
	deploy(d[0], client, "app.ns.cli.ns")
	srvIP := deploy(d[1], server, "app.ns.srv.ns")
	iperfd := exec.Command("ip", "netns", "exec", server.Name, "iperf3", "-s")
	if err := iperfd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = iperfd.Process.Kill(); _ = iperfd.Wait() })
	listenIn(b, server, ":7000")
	known := func(job string) {
		for start := time.Now(); len(m.Instances(job)) == 0; time.Sleep(50 * time.Millisecond) {
			if time.Since(start) > 10*time.Second {
				b.Fatalf("the cluster never learned of %s", job)
			}
		}
	}
	known("app.ns.srv.ns")
	known("app.ns.cli.ns")
	r := CrossResult{}
	// The first connection to a service no node asked about: the cluster
	// query is on its path.
	deploy(d[1], late, "app.ns.late.ns")
	listenIn(b, late, ":7000")
	known("app.ns.late.ns")
	r.FirstConnectUs = connectTimes(b, client, "10.30.10.1:7000", 1)[0]
	time.Sleep(300 * time.Millisecond)
	tunnel, plain := Result{Path: "tunnel", Address: "10.30.9.1"}, Result{Path: "underlay", Address: srvIP}
	for i := 0; i < 3; i++ {
		tunnel.ThroughputGbs = append(tunnel.ThroughputGbs, iperfTCP(b, client, "10.30.9.1"))
		plain.ThroughputGbs = append(plain.ThroughputGbs, iperfTCP(b, client, srvIP))
	}
	for i := 0; i < 5; i++ {
		tunnel.ConnectUs = append(tunnel.ConnectUs, connectTimes(b, client, "10.30.9.1:7000", 100)...)
		plain.ConnectUs = append(plain.ConnectUs, connectTimes(b, client, srvIP+":7000", 100)...)
	}
	r.Paths = []Result{tunnel, plain}
	data, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(strings.TrimSuffix(out, ".json")+".md", []byte(RenderCross(r)), 0o644); err != nil {
		b.Fatal(err)
	}
}
