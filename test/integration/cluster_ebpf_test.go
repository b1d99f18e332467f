package integration

import (
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/oakestra/netmanager/test/clustersite"
)

// In cluster mode the eBPF proxy translates by the cluster's table: a
// service whose only instance is on this node is served in the kernel by
// the service IPs the cluster gave (the user-space proxy sees none of its
// flows), while a round-robin IP with an instance on another node is left
// to the user-space proxy and its tunnel, which reaches both nodes.
func TestClusterEBPFProxy(t *testing.T) {
	_, _, m, nodes := newCluster(t, 2)
	a, b := nodes[0], nodes[1]
	cli := newContainer(t)
	deployContainer(t, a, cli, "app.ns.cli.ns", 0, "")
	for _, s := range []struct {
		n    *node
		name string
		inst int
		says string
	}{{a, "app.ns.srv.ns", 0, "srv-0"}, {b, "app.ns.srv.ns", 1, "srv-1"}, {a, "app.ns.late.ns", 0, "late-0"}} {
		c := newContainer(t)
		deployContainer(t, s.n, c, s.name, s.inst, "")
		serveName(t, c.ns, "7000", s.says)
	}
	waitUntil(t, "the cluster knows every instance", func() bool {
		return len(m.Instances("app.ns.srv.ns")) == 2 && len(m.Instances("app.ns.late.ns")) == 1
	})
	lateRR, lateRR6 := m.RR("app.ns.late.ns")
	lateIP, lateIP6 := m.InstanceIP("app.ns.late.ns", 0)
	srvRR, _ := m.RR("app.ns.srv.ns")
	// The local service by each of its cluster IPs, IPv4 and IPv6, through
	// the user-space proxy first, then through the eBPF proxy.
	local := []string{lateRR, lateIP, lateRR6, lateIP6}
	askLocal := func(what string) {
		t.Helper()
		for _, ip := range local {
			for _, network := range []string{"tcp", "udp"} {
				if got, err := ask(cli, network, net.JoinHostPort(ip, "7000")); err != nil || got != "late-0" {
					t.Fatalf("%s: %s to the local service by its cluster IP %s: %q %v", what, network, ip, got, err)
				}
			}
		}
	}
	askLocal("the user-space proxy")
	px := loadModule(t, a, `{"name": "proxy", "priority": 50}`)
	var trans map[string][]string
	// A's cached view of the cluster catches up with B's instance when the
	// cluster announces it; until then srv looks local to A.
	waitUntil(t, "the eBPF proxy has the local service's cluster IP, and not the round robin spanning nodes", func() bool {
		getJSON(t, a, "/ebpf/"+px.ID+"/translations", &trans)
		return len(trans[lateRR]) == 1 && len(trans[lateIP]) == 1 && len(trans[lateRR6]) == 1 && len(trans[lateIP6]) == 1 && len(trans[srvRR]) == 0
	})
	var before, after proxyStats
	getJSON(t, a, "/proxy", &before)
	askLocal("the eBPF proxy")
	getJSON(t, a, "/proxy", &after)
	if after.Stats.NewSessions != before.Stats.NewSessions {
		t.Fatalf("the user-space proxy handled %d flows the eBPF proxy should have", after.Stats.NewSessions-before.Stats.NewSessions)
	}
	for _, network := range []string{"tcp", "udp"} {
		seen := map[string]int{}
		for i := 0; i < 4; i++ {
			got, err := ask(cli, network, net.JoinHostPort(srvRR, "7000"))
			if err != nil {
				t.Fatalf("%s round robin across the nodes, ask %d: %v", network, i, err)
			}
			seen[got]++
		}
		if seen["srv-0"] != 2 || seen["srv-1"] != 2 {
			t.Fatalf("%s round robin across the nodes with the eBPF proxy loaded: %v", network, seen)
		}
	}
	getJSON(t, a, "/proxy", &after)
	if after.Stats.NewSessions-before.Stats.NewSessions != 8 {
		t.Fatalf("the user-space proxy took %d of the 8 flows spanning nodes", after.Stats.NewSessions-before.Stats.NewSessions)
	}
	var st map[string]uint64
	getJSON(t, a, "/ebpf/"+px.ID+"/stats", &st)
	if st["newSessions"] < 6 || st["errors"] != 0 {
		t.Fatalf("eBPF proxy stats: %v", st)
	}
	for _, s := range []struct {
		n    *node
		name string
		inst int
	}{{a, "app.ns.late.ns", 0}, {b, "app.ns.srv.ns", 1}, {a, "app.ns.srv.ns", 0}, {a, "app.ns.cli.ns", 0}} {
		undeploy(t, s.n, "container", s.name, s.inst)
	}
	for _, n := range nodes {
		n.stop(t)
	}
}

// tunnelStats are the user-space proxy's counters of packets it handled.
type tunnelStats struct {
	Stats struct{ Translated, NewSessions, TunnelIn, TunnelOut uint64 }
}

func userSpace(t *testing.T, n *node) tunnelStats {
	t.Helper()
	var s tunnelStats
	getJSON(t, n, "/proxy", &s)
	return s
}

// unloadModule removes a module instance.
func unloadModule(t *testing.T, n *node, id string) {
	t.Helper()
	if err := n.d.Client.Do(ctx(t), http.MethodDelete, "/ebpf/"+id, nil, nil); err != nil {
		t.Fatalf("unload %s: %v", id, err)
	}
}

// loadTunnel loads the eBPF proxy on a node's service veths and its
// underlay with the module README's request (its underlay eth0 is the
// site's underlay0), and waits until it knows the other node as a peer.
func loadTunnel(t *testing.T, n *node, peer string) string {
	t.Helper()
	id := loadTunnelModule(t, n)
	waitUntil(t, "the eBPF proxy knows its peer "+peer, func() bool { return knowsPeer(t, n, id, peer) })
	return id
}

// knowsPeer says whether a node's eBPF proxy instance has peer as a peer.
func knowsPeer(t *testing.T, n *node, id, peer string) bool {
	t.Helper()
	var peers map[string]map[string]uint64
	getJSON(t, n, "/ebpf/"+id+"/peers", &peers)
	_, ok := peers[peer]
	return ok
}

// loadTunnelModule loads the eBPF proxy on a node's service veths and its
// underlay with the module README's request.
func loadTunnelModule(t *testing.T, n *node) string {
	t.Helper()
	data, err := os.ReadFile("../../modules/proxy/README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^curl -s -X POST 127\.0\.0\.1:6000/ebpf -d '(\{.*"interfaces": \["eth0"\]\})'$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("the proxy README has no request loading the module on the underlay eth0")
	}
	return loadModule(t, n, strings.Replace(string(m[1]), `"eth0"`, `"underlay0"`, 1)).ID
}

// With the eBPF proxy on the underlay of both nodes, a client on node A
// reaches a service whose only instance runs on node B through the tunnel
// in the kernel, TCP and UDP, IPv4 and IPv6: neither user-space proxy sees
// a packet of those flows, and both modules count the other node's
// packets. With the module on one node only, the two tunnels interoperate
// both ways; unloaded from both, the user-space tunnel serves on, without
// a restart.
func TestClusterEBPFTunnel(t *testing.T) {
	_, _, m, nodes := newCluster(t, 2)
	a, b := nodes[0], nodes[1]
	cli := newContainer(t)
	deployContainer(t, a, cli, "app.ns.cli.ns", 0, "")
	srv := newContainer(t)
	deployContainer(t, b, srv, "app.ns.srv.ns", 0, "")
	serveName(t, srv.ns, "7000", "srv-b")
	waitUntil(t, "the cluster knows both instances", func() bool {
		return len(m.Instances("app.ns.srv.ns")) == 1 && len(m.Instances("app.ns.cli.ns")) == 1
	})
	// By the round-robin and the instance IP, IPv4 and IPv6, as the cluster
	// gave them.
	rr, rr6 := m.RR("app.ns.srv.ns")
	ip, ip6 := m.InstanceIP("app.ns.srv.ns", 0)
	var addrs []string
	for _, a := range []string{rr, ip, rr6, ip6} {
		addrs = append(addrs, net.JoinHostPort(a, "7000"))
	}
	askAll := func(what string) {
		t.Helper()
		for _, addr := range addrs {
			for _, network := range []string{"tcp", "udp"} {
				for i := 0; i < 3; i++ {
					if got, err := ask(cli, network, addr); err != nil || got != "srv-b" {
						t.Fatalf("%s: %s to %s, ask %d: %q %v", what, network, addr, i, got, err)
					}
				}
			}
		}
	}
	askAll("user-space tunnels") // both nodes learn each other's instances
	pa, pb := loadTunnel(t, a, clustersite.NodeIP(2)), loadTunnel(t, b, clustersite.NodeIP(1))
	askAll("warm-up with both modules") // B's module learns the client's node from its table, if it had not
	ua, ub := userSpace(t, a), userSpace(t, b)
	askAll("the eBPF tunnel on both nodes")
	if ua2, ub2 := userSpace(t, a), userSpace(t, b); ua2 != ua || ub2 != ub {
		t.Fatalf("the user-space proxies saw packets of the eBPF tunnel's flows: A %+v -> %+v, B %+v -> %+v", ua, ua2, ub, ub2)
	}
	for _, c := range []struct {
		n        *node
		id, peer string
	}{{a, pa, clustersite.NodeIP(2)}, {b, pb, clustersite.NodeIP(1)}} {
		var peers map[string]map[string]uint64
		getJSON(t, c.n, "/ebpf/"+c.id+"/peers", &peers)
		if p := peers[c.peer]; p["txPackets"] == 0 || p["rxPackets"] == 0 || p["txBytes"] == 0 || p["rxBytes"] == 0 {
			t.Fatalf("peer counters for %s: %v", c.peer, peers)
		}
		var st map[string]uint64
		getJSON(t, c.n, "/ebpf/"+c.id+"/stats", &st)
		if st["errors"] != 0 || st["decapUnknownPeer"] != 0 || st["tunnelNoRoute"] != 0 {
			t.Fatalf("eBPF proxy stats: %v", st)
		}
	}

	unloadModule(t, b, pb) // A's kernel tunnel, B's user-space one
	ub = userSpace(t, b)
	askAll("the eBPF tunnel on A only")
	if ub2 := userSpace(t, b); ub2.Stats.TunnelIn == ub.Stats.TunnelIn || ub2.Stats.TunnelOut == ub.Stats.TunnelOut {
		t.Fatalf("B's user-space tunnel did not serve: %+v -> %+v", ub, ub2)
	}
	pb = loadTunnel(t, b, clustersite.NodeIP(1))
	unloadModule(t, a, pa) // the other way round
	ua = userSpace(t, a)
	askAll("the eBPF tunnel on B only")
	if ua2 := userSpace(t, a); ua2.Stats.TunnelOut == ua.Stats.TunnelOut || ua2.Stats.TunnelIn == ua.Stats.TunnelIn {
		t.Fatalf("A's user-space tunnel did not serve: %+v -> %+v", ua, ua2)
	}
	unloadModule(t, b, pb)
	askAll("both modules unloaded")
	undeploy(t, b, "container", "app.ns.srv.ns", 0)
	undeploy(t, a, "container", "app.ns.cli.ns", 0)
	for _, n := range nodes {
		n.stop(t)
	}
}

// A load of the kernel tunnel on the wrong host interfaces is refused with
// a 4xx naming the problem, and leaves no instance, pin or program behind:
// a second host interface, an interface that does not hold the node IP.
func TestEBPFTunnelBadUnderlay(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	before := n.settled(t)
	for _, c := range []struct{ body, text string }{
		{`{"name": "proxy", "interfaces": ["lo", "goProxyBridge"]}`, "one host interface"},
		{`{"name": "proxy", "interfaces": ["lo"]}`, "does not hold the node IP"},
	} {
		code, body, err := n.d.Client.Raw(ctx(t), http.MethodPost, "/ebpf", []byte(c.body))
		if err != nil || code < 400 || code >= 500 || !strings.Contains(string(body), c.text) {
			t.Fatalf("%s: %d %s %v, want a 4xx saying %q", c.body, code, body, err, c.text)
		}
		var list []map[string]any
		getJSON(t, n, "/ebpf", &list)
		if pins, _ := os.ReadDir(n.d.PinDir); len(list) != 0 || len(pins) != 0 {
			t.Fatalf("%s left %v, pins %v", c.body, list, pins)
		}
		for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
			if ids := tcxChain(t, n, "lo", at); len(ids) > 0 {
				t.Fatalf("%s left programs %v on lo", c.body, ids)
			}
		}
		n.assertState(t, before, "after "+c.body)
	}
	n.stop(t)
}
