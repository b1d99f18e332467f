package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/test/clusterstub"
	"github.com/oakestra/netmanager/test/nstest"
)

// underlayNode is a node on the test's underlay: its namespace is joined
// to the underlay bridge (192.168.77.<i>/24) before its NetManager starts,
// with a node subnet of its own.
func underlayNode(t *testing.T, ul *nstest.Netns, i int) *node {
	t.Helper()
	n := &node{ns: nstest.NewNetns(t, "nm-node")}
	host, peer := fmt.Sprintf("ul%d%s", i, n.ns.Name[len(n.ns.Name)-4:]), "underlay0"
	nstest.Run(t, "ip", "link", "add", host, "netns", ul.Name, "type", "veth", "peer", "name", peer, "netns", n.ns.Name)
	ul.MustExec(t, "ip", "link", "set", host, "master", "ulbr", "up")
	n.ns.MustExec(t, "ip", "addr", "add", fmt.Sprintf("192.168.77.%d/24", i), "dev", peer)
	n.ns.MustExec(t, "ip", "link", "set", peer, "up")
	cfg := filepath.Join(t.TempDir(), "netmanager.json")
	text := fmt.Sprintf(`{"nodeSubnet": "10.18.%d.0/24", "nodeSubnetV6": "fd00:18:%d::/64", "nodeIP": "192.168.77.%d"}`, i, i, i)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	n.pristine = n.settled(t)
	n.d = nstest.StartDaemon(t, netmanagerBin, n.ns, "--modules-dir", modulesDir, "--config", cfg)
	n.ready = n.settled(t)
	return n
}

func (n *node) register(t *testing.T, id string) {
	t.Helper()
	code, out, err := n.d.Client.Raw(ctx(t), "POST", "/register", fmt.Appendf(nil, `{"client_id": %q, "cluster_address": "192.168.77.254"}`, id))
	var reg map[string]string
	_ = json.Unmarshal(out, &reg)
	if err != nil || code != 200 || reg["mode"] != "cluster" {
		t.Fatalf("register %s: %d %s %v", id, code, out, err)
	}
}

// Three nodes on one underlay, one broker, the stand-in cluster manager: a
// client on node A reaches a round-robin service IP whose instances run on
// nodes B and C through the tunnel, over TCP and UDP, by round robin; when
// C's instance goes, new flows go to B.
func TestClusterThreeNodes(t *testing.T) {
	ul := nstest.NewNetns(t, "nm-ul")
	ul.MustExec(t, "ip", "link", "add", "ulbr", "type", "bridge")
	ul.MustExec(t, "ip", "addr", "add", "192.168.77.254/24", "dev", "ulbr")
	ul.MustExec(t, "ip", "link", "set", "ulbr", "up")
	clusterstub.StartBroker(t, ul, "192.168.77.254:10003")
	m := clusterstub.NewManagerIn(t, ul, "192.168.77.254:10003", cluster.SubnetResult{Address: "10.18.1.0"},
		cluster.SubnetResult{Address: "10.18.2.0"}, cluster.SubnetResult{Address: "10.18.3.0"})
	m.Service("app.ns.cli.ns", "10.30.8.1", "fdff:2000::8:1")
	m.Service("app.ns.srv.ns", "10.30.9.1", "fdff:2000::9:1")
	a, b, c := underlayNode(t, ul, 1), underlayNode(t, ul, 2), underlayNode(t, ul, 3)
	for i, n := range []*node{a, b, c} {
		n.register(t, fmt.Sprintf("node-%c", 'a'+i))
	}
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
	for _, network := range []string{"tcp", "udp"} {
		seen := map[string]int{}
		for i := 0; i < 4; i++ {
			got, err := ask(cli, network, "10.30.9.1:7000")
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
			if got, err := ask(cli, "tcp", "10.30.9.1:7000"); err != nil || got != "srv-0" {
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
