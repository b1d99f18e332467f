package integration

import "testing"

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
	px := loadModule(t, a, `{"name": "proxy", "priority": 50}`)
	var trans map[string][]string
	// A's cached view of the cluster catches up with B's instance when the
	// cluster announces it; until then srv looks local to A.
	waitUntil(t, "the eBPF proxy has the local service's cluster IP, and not the round robin spanning nodes", func() bool {
		getJSON(t, a, "/ebpf/"+px.ID+"/translations", &trans)
		return len(trans["10.30.10.1"]) == 1 && len(trans["10.30.9.1"]) == 0
	})
	var before, after proxyStats
	getJSON(t, a, "/proxy", &before)
	for _, network := range []string{"tcp", "udp"} {
		for i := 0; i < 3; i++ {
			if got, err := ask(cli, network, "10.30.10.1:7000"); err != nil || got != "late-0" {
				t.Fatalf("%s to the local service by its cluster IP: %q %v", network, got, err)
			}
		}
	}
	getJSON(t, a, "/proxy", &after)
	if after.Stats.NewSessions != before.Stats.NewSessions {
		t.Fatalf("the user-space proxy handled %d flows the eBPF proxy should have", after.Stats.NewSessions-before.Stats.NewSessions)
	}
	for _, network := range []string{"tcp", "udp"} {
		seen := map[string]int{}
		for i := 0; i < 4; i++ {
			got, err := ask(cli, network, "10.30.9.1:7000")
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
