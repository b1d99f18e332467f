package integration

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/deploy"
)

func fwPut(t *testing.T, n *node, id, rules string) {
	t.Helper()
	status, body, err := n.d.Client.Raw(ctx(t), http.MethodPut, "/ebpf/"+id+"/rules", []byte(rules))
	if err != nil || status != 200 {
		t.Fatalf("PUT rules: %d %s %v", status, body, err)
	}
}

// tcpReachable reports whether a TCP connection from ns to addr completes.
func tcpReachable(c *container, addr string) bool {
	got, err := echo(c.ns, "tcp", addr)
	return err == nil && got == "echo hello"
}

// Deny ICMP: ping fails, TCP still works; delete the rule: ping works again.
func TestFirewallDenyICMP(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	a, b := newContainer(t), newContainer(t)
	deployContainer(t, n, a, "app.ns.client.ns", 0, "")
	rb := deployContainer(t, n, b, "app.ns.server.ns", 0, "")
	serveEcho(t, b.ns, "tcp", ":8080")
	fw := loadModule(t, n, `{"name": "firewall", "services": ["app.ns.server.ns"], "config": {"rules": [{"id": "noping", "action": "deny", "proto": "icmp"}]}}`)
	pingMarked(t, a, rb.NsAddress, 2, "", true)
	if !tcpReachable(a, net.JoinHostPort(rb.NsAddress, "8080")) {
		t.Fatal("TCP blocked by an ICMP rule")
	}
	var rules []struct {
		ID   string
		Hits uint64
	}
	getJSON(t, n, "/ebpf/"+fw.ID+"/rules", &rules)
	if len(rules) != 1 || rules[0].Hits < 2 {
		t.Fatalf("rules: %+v", rules)
	}
	if err := n.d.Client.Do(ctx(t), http.MethodDelete, "/ebpf/"+fw.ID+"/rules/noping", nil, nil); err != nil {
		t.Fatal(err)
	}
	assertPing(t, a.ns, rb.NsAddress)
	var stats map[string]map[string]struct{ Allowed, Denied uint64 }
	getJSON(t, n, "/ebpf/"+fw.ID+"/stats", &stats)
	var denied uint64
	for _, dirs := range stats {
		denied += dirs["ingress"].Denied
	}
	if denied < 2 {
		t.Fatalf("stats: %+v", stats)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.client.ns", 0)
	undeploy(t, n, deploy.KindContainer, "app.ns.server.ns", 0)
	n.stop(t)
}

// Deny all ingress but tcp/8080: that port answers, another does not, and the
// service's own outgoing connection works (replies pass: stateful).
func TestFirewallIngressExceptPort(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	a, b := newContainer(t), newContainer(t)
	ra := deployContainer(t, n, a, "app.ns.outside.ns", 0, "")
	rb := deployContainer(t, n, b, "app.ns.guarded.ns", 0, "")
	serveEcho(t, b.ns, "tcp", ":8080")
	serveEcho(t, b.ns, "tcp", ":9090")
	serveEcho(t, a.ns, "tcp", ":7000")
	loadModule(t, n, `{"name": "firewall", "services": ["app.ns.guarded.ns"], "config": {"rules": [
		{"action": "allow", "direction": "ingress", "proto": "tcp", "dstPorts": "8080", "priority": 10},
		{"action": "deny", "direction": "ingress", "priority": 20}]}}`)
	if !tcpReachable(a, net.JoinHostPort(rb.NsAddress, "8080")) {
		t.Fatal("the allowed port is unreachable")
	}
	if tcpReachable(a, net.JoinHostPort(rb.NsAddress, "9090")) {
		t.Fatal("a denied port answered")
	}
	if !tcpReachable(b, net.JoinHostPort(ra.NsAddress, "7000")) {
		t.Fatal("the service's own outgoing connection failed: replies were not let through")
	}
	pingMarked(t, a, rb.NsAddress, 1, "", true) // ICMP in: denied
	assertPing(t, b.ns, ra.NsAddress)           // ICMP out and its reply: allowed
	undeploy(t, n, deploy.KindContainer, "app.ns.outside.ns", 0)
	undeploy(t, n, deploy.KindContainer, "app.ns.guarded.ns", 0)
	n.stop(t)
}

// Replacing the rule set while traffic flows never judges a packet by a mix of
// the old and the new set. The two sets below deny UDP to port 7000 from the
// client, but a mix of A's source table and B's port table would allow it;
// port 7002 is allowed by both and proves traffic kept flowing.
func TestFirewallReplaceIsAtomic(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	a, b := newContainer(t), newContainer(t)
	ra := deployContainer(t, n, a, "app.ns.sender.ns", 0, "")
	rb := deployContainer(t, n, b, "app.ns.receiver.ns", 0, "")
	fw := loadModule(t, n, `{"name": "firewall", "services": ["app.ns.receiver.ns"], "config": {"stateful": false}}`)
	setA := fmt.Sprintf(`[{"action":"allow","src":"%s","proto":"udp","dstPorts":"7001"},{"action":"allow","proto":"udp","dstPorts":"7002"},{"action":"deny","proto":"udp"}]`, ra.NsAddress)
	setB := `[{"action":"allow","src":"192.0.2.1","proto":"udp","dstPorts":"7000"},{"action":"allow","proto":"udp","dstPorts":"7002"},{"action":"deny","proto":"udp"}]`
	fwPut(t, n, fw.ID, setA)

	var got7000, got7002 atomic.Int64
	for port, counter := range map[string]*atomic.Int64{"7000": &got7000, "7002": &got7002} {
		var pc net.PacketConn
		if err := b.ns.Do(func() (err error) { pc, err = net.ListenPacket("udp4", ":"+port); return }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go func(pc net.PacketConn, c *atomic.Int64) {
			buf := make([]byte, 64)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
				c.Add(1)
			}
		}(pc, counter)
	}
	var conns []net.Conn
	for _, port := range []string{"7000", "7002"} {
		var c net.Conn
		if err := a.ns.Do(func() (err error) { c, err = net.Dial("udp4", net.JoinHostPort(rb.NsAddress, port)); return }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	stop := make(chan struct{})
	sent := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				sent <- n
				return
			default:
			}
			for _, c := range conns {
				_, _ = c.Write([]byte("x"))
			}
			n++
		}
	}()
	for i := 0; i < 40; i++ {
		if i%2 == 0 {
			fwPut(t, n, fw.ID, setB)
		} else {
			fwPut(t, n, fw.ID, setA)
		}
	}
	close(stop)
	total := <-sent
	time.Sleep(200 * time.Millisecond)
	if got7000.Load() != 0 {
		t.Fatalf("%d of %d packets to port 7000 were let through: judged by a mix of two rule sets", got7000.Load(), total)
	}
	if got7002.Load() < int64(total)/10 { // a flood: the receiver's socket buffer drops some
		t.Fatalf("only %d of %d packets to port 7002 arrived while the set was replaced", got7002.Load(), total)
	}
	t.Logf("%d rounds sent during 40 replacements; %d arrived on 7002, 0 on 7000", total, got7002.Load())
	undeploy(t, n, deploy.KindContainer, "app.ns.sender.ns", 0)
	undeploy(t, n, deploy.KindContainer, "app.ns.receiver.ns", 0)
	n.stop(t)
}

// Rules with bad fields are refused over HTTP with the field named.
func TestFirewallBadRulesOverHTTP(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	c := newContainer(t)
	deployContainer(t, n, c, "app.ns.svc.ns", 0, "")
	status, body, _ := n.d.Client.Raw(ctx(t), http.MethodPost, "/ebpf", []byte(`{"name": "firewall", "config": {"rules": [{"action": "deny", "src": "300.0.0.0/8"}]}}`))
	if status != 400 || !strings.Contains(string(body), "rules[0].src") {
		t.Fatalf("bad config rule: %d %s", status, body)
	}
	fw := loadModule(t, n, `{"name": "firewall"}`)
	status, body, _ = n.d.Client.Raw(ctx(t), http.MethodPost, "/ebpf/"+fw.ID+"/rules", []byte(`{"action": "deny", "dstPorts": "9-1"}`))
	if status != 400 || !strings.Contains(string(body), "dstPorts") {
		t.Fatalf("bad rule: %d %s", status, body)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.svc.ns", 0)
	n.stop(t)
}
