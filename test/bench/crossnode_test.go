package bench

import (
	"encoding/json"
	"fmt"
	"net"
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
// on node B, by service IP through the user-space tunnel, then (the eBPF
// proxy loaded on both nodes' services and underlays) through the kernel
// tunnel, each phase's samples alternating with plain underlay routing to
// the server's namespace IP.
func BenchmarkCrossNode(b *testing.B) {
	nstest.RequireRoot()
	out := os.Getenv("BENCH_CROSS_OUT")
	if out == "" {
		b.Fatal("BENCH_CROSS_OUT must name the JSON file to write (make bench sets it)")
	}
	var rs []CrossResult
	for _, offload := range []bool{false, true} {
		b.Run(map[bool]string{false: "wire", true: "virtual-wire"}[offload], func(b *testing.B) {
			rs = append(rs, crossRun(b, offload))
		})
	}
	data, _ := json.MarshalIndent(rs, "", "  ")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(strings.TrimSuffix(out, ".json")+".md", []byte(RenderCross(rs)), 0o644); err != nil {
		b.Fatal(err)
	}
}

// crossRun is one run of BenchmarkCrossNode on a new site. offload: the
// nodes' underlay interfaces keep the veth's checksum and segmentation
// offloads, so GSO packets cross the underlay whole (a virtual wire between
// nodes on one host); without, the underlay is a wire between machines.
func crossRun(b *testing.B, offload bool) CrossResult {
	root, _ := filepath.Abs("../..")
	nm := bin(b, "NETMANAGER_BIN", "github.com/oakestra/netmanager/node-net-manager/cmd/netmanager")
	ul, _ := clustersite.NewUnderlay(b)
	m := clustersite.NewManager(b, ul, 2)
	var d [2]*nstest.Daemon
	for i := range d {
		ns := nstest.NewNetns(b, "nm-bench-node")
		cfg := clustersite.Join(b, ul, ns, i+1)
		if offload {
			ns.MustExec(b, "ethtool", "-K", "underlay0", "tx", "on", "tso", "on", "gso", "on")
		}
		d[i] = nstest.StartDaemon(b, nm, ns, "--modules-dir", filepath.Join(root, "build", "modules"), "--config", cfg, "--log-level", "info")
		body := fmt.Appendf(nil, `{"client_id": "node-%d", "cluster_address": %q}`, i+1, strings.Split(clustersite.BrokerAddr, ":")[0])
		if code, o, err := d[i].Client.Raw(b.Context(), "POST", "/register", body); err != nil || code != 200 {
			b.Fatalf("register: %d %s %v", code, o, err)
		}
	}
	// Plain routing between the node subnets over the underlay.
	sub1, _ := clustersite.Subnet(1)
	sub2, _ := clustersite.Subnet(2)
	d[0].Node.MustExec(b, "ip", "route", "add", sub2, "via", clustersite.NodeIP(2))
	d[1].Node.MustExec(b, "ip", "route", "add", sub1, "via", clustersite.NodeIP(1))
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
	r := CrossResult{Offload: offload}
	// The first connection to a service no node asked about: the cluster
	// query is on its path.
	deploy(d[1], late, "app.ns.late.ns")
	listenIn(b, late, ":7000")
	known("app.ns.late.ns")
	lateRR, _ := m.RR("app.ns.late.ns")
	srvRR, _ := m.RR("app.ns.srv.ns")
	r.FirstConnectUs = connectTimes(b, client, net.JoinHostPort(lateRR, "7000"), 1)[0]
	time.Sleep(300 * time.Millisecond)
	tunnel, plain := Result{Path: "user-space tunnel", Address: srvRR}, Result{Path: "underlay", Address: srvIP}
	alternate(b, client, &tunnel, &plain, srvIP)
	for i, dm := range d {
		loadTunnel(b, dm, clustersite.NodeIP(2-i))
	}
	kernel, plain2 := Result{Path: "eBPF tunnel", Address: srvRR}, Result{Path: "underlay, eBPF proxy loaded", Address: srvIP}
	alternate(b, client, &kernel, &plain2, srvIP)
	r.Paths = []Result{tunnel, plain, kernel, plain2}
	return r
}

// alternate measures the service IP path and plain routing to the server,
// samples alternating: TCP throughput 3 times, connect time 5 × 100.
func alternate(b *testing.B, client *nstest.Netns, svc, plain *Result, srvIP string) {
	for i := 0; i < 3; i++ {
		svc.ThroughputGbs = append(svc.ThroughputGbs, iperfTCP(b, client, svc.Address))
		plain.ThroughputGbs = append(plain.ThroughputGbs, iperfTCP(b, client, srvIP))
	}
	for i := 0; i < 5; i++ {
		svc.ConnectUs = append(svc.ConnectUs, connectTimes(b, client, svc.Address+":7000", 100)...)
		plain.ConnectUs = append(plain.ConnectUs, connectTimes(b, client, srvIP+":7000", 100)...)
	}
}

// loadTunnel loads the eBPF proxy on a node's services and underlay and
// waits until it counts the other node as a peer.
func loadTunnel(b *testing.B, dm *nstest.Daemon, peer string) {
	code, o, err := dm.Client.Raw(b.Context(), "POST", "/ebpf",
		[]byte(`{"name": "proxy", "priority": 50, "services": ["*"], "interfaces": ["underlay0"]}`))
	var info struct{ ID string }
	if err != nil || code != 201 && code != 200 || json.Unmarshal(o, &info) != nil {
		b.Fatalf("load the eBPF proxy: %d %s %v", code, o, err)
	}
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		_, o, _ := dm.Client.Raw(b.Context(), "GET", "/ebpf/"+info.ID+"/peers", nil)
		var peers map[string]any
		if json.Unmarshal(o, &peers) == nil && peers[peer] != nil {
			return
		}
		if time.Since(start) > 10*time.Second {
			b.Fatalf("the eBPF proxy never knew its peer %s: %s", peer, o)
		}
	}
}
