package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/test/clustersite"
	"github.com/oakestra/netmanager/test/clusterstub"
	"github.com/oakestra/netmanager/test/nstest"
)

// underlayNode is node i on the test's underlay, its NetManager started
// once its namespace is joined (the tunnel binds the underlay address).
func underlayNode(t *testing.T, ul *nstest.Netns, i int, args ...string) *node {
	t.Helper()
	n := &node{ns: nstest.NewNetns(t, "nm-node")}
	cfg := clustersite.Join(t, ul, n.ns, i)
	n.pristine = n.settled(t)
	n.d = nstest.StartDaemon(t, netmanagerBin, n.ns, append([]string{"--modules-dir", modulesDir, "--config", cfg}, args...)...)
	n.ready = n.settled(t)
	return n
}

func (n *node) register(t *testing.T, id string) map[string]string {
	t.Helper()
	code, out, err := n.d.Client.Raw(ctx(t), "POST", "/register", fmt.Appendf(nil, `{"client_id": %q, "cluster_address": "192.168.77.254"}`, id))
	var reg map[string]string
	_ = json.Unmarshal(out, &reg)
	if err != nil || code != 200 || reg["mode"] != "cluster" {
		t.Fatalf("register %s: %d %s %v", id, code, out, err)
	}
	return reg
}

// newCluster makes the underlay, the stand-in cluster manager and n
// registered nodes.
func newCluster(t *testing.T, n int) (*nstest.Netns, *clusterstub.Broker, *clusterstub.Manager, []*node) {
	t.Helper()
	ul, br := clustersite.NewUnderlay(t)
	m := clustersite.NewManager(t, ul, n)
	var nodes []*node
	for i := 1; i <= n; i++ {
		nd := underlayNode(t, ul, i)
		nd.register(t, fmt.Sprintf("node-%c", 'a'+i-1))
		nodes = append(nodes, nd)
	}
	return ul, br, m, nodes
}

// Three nodes on one underlay, one broker, the stand-in cluster manager: a
// client on node A reaches a round-robin service IP whose instances run on
// nodes B and C through the tunnel, over TCP and UDP, by round robin; when
// C's instance goes, new flows go to B.
func TestClusterThreeNodes(t *testing.T) {
	_, _, m, nodes := newCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	cli := newContainer(t)
	deployContainer(t, a, cli, "app.ns.cli.ns", 0, "")
	for i, n := range []*node{b, c} {
		srv := newContainer(t)
		deployContainer(t, n, srv, "app.ns.srv.ns", i, "")
		serveName(t, srv.ns, "7000", fmt.Sprintf("srv-%d", i))
	}
	waitUntil(t, "the cluster knows all three instances", func() bool {
		return len(m.Instances("app.ns.srv.ns")) == 2 && len(m.Instances("app.ns.cli.ns")) == 1
	})
	assertClusterServices(t, m, a, b, c)
	srvRR := rrPort(m, "app.ns.srv.ns")
	for _, network := range []string{"tcp", "udp"} {
		seen := map[string]int{}
		for i := 0; i < 4; i++ {
			got, err := ask(cli, network, srvRR)
			if err != nil {
				t.Fatalf("%s to the service IP across nodes: %v", network, err)
			}
			seen[got]++
		}
		if seen["srv-0"] != 2 || seen["srv-1"] != 2 {
			t.Fatalf("%s round robin over nodes B and C: %v", network, seen)
		}
	}
	// Through the tunnel: out of A, into B and C.
	for _, x := range []struct {
		n     *node
		field string
	}{{a, "tunnelOut"}, {b, "tunnelIn"}, {c, "tunnelIn"}} {
		var px struct{ Stats map[string]any }
		getJSON(t, x.n, "/proxy", &px)
		if v, _ := px.Stats[x.field].(float64); v < 4 {
			t.Fatalf("proxy %s on %s: %v", x.field, x.n.ns.Name, px.Stats)
		}
	}
	undeploy(t, c, "container", "app.ns.srv.ns", 1)
	m.Remove("app.ns.srv.ns", 1)
	waitUntil(t, "new flows go to B only", func() bool {
		for i := 0; i < 3; i++ {
			if got, err := ask(cli, "tcp", srvRR); err != nil || got != "srv-0" {
				return false
			}
		}
		return true
	})
	undeploy(t, b, "container", "app.ns.srv.ns", 0)
	undeploy(t, a, "container", "app.ns.cli.ns", 0)
	for _, n := range []*node{a, b, c} {
		n.stop(t)
	}
}

// The broker is lost under way: flows to instances the node has cached keep
// going through the tunnel; when the broker is back, the nodes report their
// instances again (the cluster manager, restarted on its database, knew
// the addresses it gave, not where instances run) and a service never asked
// about before is found.
func TestClusterBrokerLost(t *testing.T) {
	ul, br, m, nodes := newCluster(t, 2)
	a, b := nodes[0], nodes[1]
	cli, srv, late := newContainer(t), newContainer(t), newContainer(t)
	deployContainer(t, a, cli, "app.ns.cli.ns", 0, "")
	deployContainer(t, b, srv, "app.ns.srv.ns", 0, "")
	serveName(t, srv.ns, "7000", "srv-0")
	waitUntil(t, "the cluster knows both instances", func() bool {
		return len(m.Instances("app.ns.srv.ns")) == 1 && len(m.Instances("app.ns.cli.ns")) == 1
	})
	srvRR := rrPort(m, "app.ns.srv.ns")
	if got, err := ask(cli, "tcp", srvRR); err != nil || got != "srv-0" {
		t.Fatalf("before the loss: %q %v", got, err)
	}
	br.Stop()
	for i := 0; i < 3; i++ {
		if got, err := ask(cli, "tcp", srvRR); err != nil || got != "srv-0" {
			t.Fatalf("a cached service while the broker is gone: %q %v", got, err)
		}
	}
	clusterstub.StartBroker(t, ul, clustersite.BrokerAddr)
	m2 := clustersite.RestartManager(t, ul, 2, m)
	waitUntil(t, "the nodes report their instances again", func() bool {
		return len(m2.Instances("app.ns.srv.ns")) == 1 && len(m2.Instances("app.ns.cli.ns")) == 1
	})
	deployContainer(t, b, late, "app.ns.late.ns", 0, "")
	serveName(t, late.ns, "7000", "late-0")
	askUntil(t, a, b, cli, rrPort(m2, "app.ns.late.ns"), "late-0", "a new service found through the cluster")
	undeploy(t, b, "container", "app.ns.late.ns", 0)
	undeploy(t, b, "container", "app.ns.srv.ns", 0)
	undeploy(t, a, "container", "app.ns.cli.ns", 0)
	for _, n := range nodes {
		n.stop(t)
	}
}

// A node restarts with its services kept (persist); it registers again and
// reports them, and they are reachable from the other node again. Replies
// need the cluster's table, which only a registered node has.
func TestClusterNodeRestart(t *testing.T) {
	ul, _ := clustersite.NewUnderlay(t)
	m := clustersite.NewManager(t, ul, 2)
	a := underlayNode(t, ul, 1)
	a.register(t, "node-a")
	state := "--state-dir=" + t.TempDir()
	b := underlayNode(t, ul, 2, state, "--persist")
	bSubnet, _ := clustersite.Subnet(2)
	if reg := b.register(t, "node-b"); reg["subnet"] != bSubnet {
		t.Fatalf("node B did not move to the cluster's subnet: %v", reg)
	}
	cli, srv := newContainer(t), newContainer(t)
	deployContainer(t, a, cli, "app.ns.cli.ns", 0, "")
	deployContainer(t, b, srv, "app.ns.srv.ns", 0, "")
	serveName(t, srv.ns, "7000", "srv-0")
	srvRR := rrPort(m, "app.ns.srv.ns")
	if got, err := ask(cli, "tcp", srvRR); err != nil || got != "srv-0" {
		t.Fatalf("before the restart: %q %v", got, err)
	}
	before := len(m.Messages("service/deployed"))
	pins := b.d.PinDir
	b.d.Stop(t)
	cfg := filepath.Join(t.TempDir(), "netmanager.json")
	if err := os.WriteFile(cfg, []byte(`{"nodeSubnet": "10.18.2.0/24", "nodeSubnetV6": "fd00:18:2::/64", "nodeIP": "192.168.77.2"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	b.d = nstest.StartDaemon(t, netmanagerBin, b.ns, "--modules-dir", modulesDir, "--config", cfg, state, "--persist", "--pin-dir", pins)
	if br := b.ns.MustExec(t, "ip", "-br", "addr", "show", "dev", "goProxyBridge"); !strings.Contains(br, " "+gatewayOf(bSubnet)+" ") {
		t.Fatalf("the restarted node left the subnet its kept services are in: %s", br)
	}
	if got, err := ask(cli, "tcp", srvRR); err == nil {
		t.Fatalf("reached the restarted node before it registered (%q): its replies need the cluster's table", got)
	}
	b.register(t, "node-b")
	waitUntil(t, "the restarted node reports its instance", func() bool { return len(m.Messages("service/deployed")) > before })
	askUntil(t, a, b, cli, srvRR, "srv-0", "reachable after the restart and registration")
	undeploy(t, b, "container", "app.ns.srv.ns", 0)
	undeploy(t, a, "container", "app.ns.cli.ns", 0)
	b.d.Stop(t)
	b.d = nstest.StartDaemon(t, netmanagerBin, b.ns, "--modules-dir", modulesDir, "--config", cfg, state, "--pin-dir", pins)
	for _, n := range []*node{a, b} {
		n.stop(t)
	}
}

// rrPort is a job's IPv4 round-robin IP in the cluster, with port 7000.
func rrPort(m *clusterstub.Manager, job string) string {
	rr, _ := m.RR(job)
	return net.JoinHostPort(rr, "7000")
}

// gatewayOf is a subnet's first address with the subnet's length (the
// bridge's address in it), e.g. 10.18.0.65/26 for 10.18.0.64/26.
func gatewayOf(subnet string) string {
	p := netip.MustParsePrefix(subnet)
	return netip.PrefixFrom(p.Addr().Next(), p.Bits()).String()
}

// askUntil asks addr from c over TCP until the answer is want (at most 10
// tries of up to 2 s each); on failure it shows both nodes' proxy counters.
func askUntil(t *testing.T, a, b *node, c *container, addr, want, what string) {
	t.Helper()
	var got string
	var err error
	for i := 0; i < 10; i++ {
		if got, err = ask(c, "tcp", addr); err == nil && got == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	var pa, pb map[string]any
	getJSON(t, a, "/proxy", &pa)
	getJSON(t, b, "/proxy", &pb)
	t.Fatalf("%s: %q %v\nA: %v\nB: %v", what, got, err, pa, pb)
}
