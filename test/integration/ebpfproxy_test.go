package integration

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

type proxyStats struct {
	Stats struct{ Translated, NewSessions uint64 }
}

// The eBPF proxy translates service IPs in the kernel: round robin over
// instances, instance IPs, UDP and ping, without the user-space proxy seeing
// those flows; a service IP it cannot serve falls through to the user-space
// proxy; unloading it falls back to the user-space proxy without a restart.
func TestEBPFProxy(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	client := webServices(t, n)
	px := loadModule(t, n, `{"name": "proxy", "priority": 50}`)
	// The translations are in place when the load answers, before any
	// packet could miss one (the proxy attaches to the 4 services in one
	// batch and writes them at its end).
	var atLoad map[string][]string
	getJSON(t, n, "/ebpf/"+px.ID+"/translations", &atLoad)
	if web := serviceIP(t, n, "app.ns.web.ns", 0, table.PolicyRoundRobin); len(atLoad[web]) != 3 {
		t.Fatalf("translations when the load answered: %v, want 3 instances behind %s", atLoad, web)
	}
	var before, after proxyStats
	getJSON(t, n, "/proxy", &before)

	rr := assertServiceIPs(t, n, client)
	rr6 := assertServiceIPs6(t, n, client)
	// An instance's ICMP port unreachable is translated back in the kernel.
	assertRefused(t, client, "udp4", net.JoinHostPort(rr, "9999"))
	assertRefused(t, client, "udp6", net.JoinHostPort(rr6, "9999"))
	getJSON(t, n, "/proxy", &after)
	if after.Stats.NewSessions != before.Stats.NewSessions {
		t.Fatalf("the user-space proxy handled %d flows the eBPF proxy should have", after.Stats.NewSessions-before.Stats.NewSessions)
	}
	var st map[string]uint64
	getJSON(t, n, "/ebpf/"+px.ID+"/stats", &st)
	if st["newSessions"] < 14 || st["hits"] == 0 || st["errors"] != 0 || st["icmpErrors"] < 2 {
		t.Fatalf("eBPF proxy stats: %v", st)
	}
	var trans map[string][]string
	getJSON(t, n, "/ebpf/"+px.ID+"/translations", &trans)
	if len(trans[rr]) != 3 || len(trans[rr6]) != 3 {
		t.Fatalf("translations: %v", trans)
	}

	// A service deployed after the proxy: its first SYN gets through (a lost
	// one would be retransmitted after 1 s, past this 900 ms limit).
	fresh := newContainer(t)
	deployContainer(t, n, fresh, "app.ns.fresh.ns", 0, "")
	serveName(t, fresh.ns, "8080", "fresh")
	freshIP := serviceIP(t, n, "app.ns.fresh.ns", 0, table.PolicyRoundRobin)
	var conn net.Conn
	if err := client.ns.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp4", net.JoinHostPort(freshIP, "8080"), 900*time.Millisecond)
		return
	}); err != nil {
		t.Fatalf("first connection to a new service: %v", err)
	}
	conn.Close()
	undeploy(t, n, deploy.KindContainer, "app.ns.fresh.ns", 0)

	// An undeployed instance gets no new flows.
	undeploy(t, n, deploy.KindContainer, "app.ns.web.ns", 1)
	for i := 0; i < 3; i++ {
		if name, err := ask(client, "tcp4", net.JoinHostPort(rr, "8080")); err != nil || name == "web1" {
			t.Fatalf("after undeploying web1: %q %v", name, err)
		}
	}
	// A service IP with no instances: refused at once (ICMP host unreachable), never a hang.
	assertUnreachable(t, client, "10.30.250.250:8080")
	// Unload: the user-space proxy serves again.
	if err := n.d.Client.Do(ctx(t), http.MethodDelete, "/ebpf/"+px.ID, nil, nil); err != nil {
		t.Fatal(err)
	}
	if name, err := ask(client, "tcp4", net.JoinHostPort(rr, "8080")); err != nil || !strings.HasPrefix(name, "web") {
		t.Fatalf("after unloading the eBPF proxy: %q %v", name, err)
	}
	getJSON(t, n, "/proxy", &after)
	if after.Stats.NewSessions == before.Stats.NewSessions {
		t.Fatal("the user-space proxy did not take over")
	}
	for _, i := range []int{0, 2} {
		undeploy(t, n, deploy.KindContainer, "app.ns.web.ns", i)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.client.ns", 0)
	n.assertState(t, n.ready, "after the eBPF proxy test")
	n.stop(t)
}
