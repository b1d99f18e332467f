package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/test/clustersite"
	"github.com/oakestra/netmanager/test/clusterstub"
)

// interestRemoved counts the interest/remove messages per node and job.
func interestRemoved(t *testing.T, m *clusterstub.Manager) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, msg := range m.Messages("interest/remove") {
		var r cluster.InterestRemove
		if err := json.Unmarshal(msg.Payload, &r); err != nil {
			t.Fatalf("interest/remove from %s: %s", msg.Node, msg.Payload)
		}
		out[msg.Node+" "+r.AppName]++
	}
	return out
}

// With a short interestTimeout, node A releases the job of a service on
// node B once nothing in user space asks the table about it — exactly
// once, and never the jobs of its own instances — while a UDP flow to it,
// served by both kernel tunnels, goes on without losing a reply: the eBPF
// proxy keeps a peer its sessions point at after the table lost the peer's
// instances.
func TestClusterInterestReleased(t *testing.T) {
	ul, _ := clustersite.NewUnderlay(t)
	m := clustersite.NewManager(t, ul, 2)
	var nodes []*node
	for i := 1; i <= 2; i++ {
		n := underlayNode(t, ul, i, "--interest-timeout", "1s")
		n.register(t, fmt.Sprintf("node-%c", 'a'+i-1))
		nodes = append(nodes, n)
	}
	a, b := nodes[0], nodes[1]
	cli, srv := newContainer(t), newContainer(t)
	deployContainer(t, a, cli, "app.ns.cli.ns", 0, "")
	deployContainer(t, b, srv, "app.ns.srv.ns", 0, "")
	serveName(t, srv.ns, "7000", "srv-b")
	waitUntil(t, "the cluster knows both instances", func() bool {
		return len(m.Instances("app.ns.srv.ns")) == 1 && len(m.Instances("app.ns.cli.ns")) == 1
	})
	addr := rrPort(m, "app.ns.srv.ns")
	if got, err := ask(cli, "udp", addr); err != nil || got != "srv-b" {
		t.Fatalf("through the user-space tunnels: %q %v", got, err)
	}
	// The job may be released while the modules load (the timeout is
	// short): a request through the user-space proxy asks for it again, until
	// both kernel tunnels know their peer.
	pa, pb := loadTunnelModule(t, a), loadTunnelModule(t, b)
	waitUntil(t, "both eBPF proxies know their peer", func() bool {
		_, _ = ask(cli, "udp", addr)
		return knowsPeer(t, a, pa, clustersite.NodeIP(2)) && knowsPeer(t, b, pb, clustersite.NodeIP(1))
	})
	before := interestRemoved(t, m)["node-a app.ns.srv.ns"]
	var conn net.Conn
	if err := cli.ns.Do(func() (err error) { conn, err = net.Dial("udp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 64)
	for start := time.Now(); time.Since(start) < 4*time.Second; time.Sleep(200 * time.Millisecond) {
		_ = conn.SetDeadline(time.Now().Add(time.Second))
		if _, err := conn.Write([]byte("?")); err != nil {
			t.Fatal(err)
		}
		if n, err := conn.Read(buf); err != nil || string(buf[:n]) != "srv-b" {
			t.Fatalf("the flow %v after its start, its job released meanwhile: %q %v", time.Since(start).Round(time.Millisecond), buf[:n], err)
		}
	}
	got := interestRemoved(t, m)
	if got["node-a app.ns.srv.ns"]-before != 1 || got["node-a app.ns.cli.ns"] != 0 || got["node-b app.ns.srv.ns"] != 0 {
		t.Fatalf("interest/remove by node and job: %v; want the remote job released once, during the flow, and never a local one", got)
	}
	var st map[string]uint64
	getJSON(t, a, "/ebpf/"+pa+"/stats", &st)
	if st["decapUnknownPeer"] != 0 {
		t.Fatalf("A's kernel tunnel refused replies from B: %v", st)
	}
	undeploy(t, b, "container", "app.ns.srv.ns", 0)
	undeploy(t, a, "container", "app.ns.cli.ns", 0)
	for _, n := range nodes {
		n.stop(t)
	}
}
