package integration

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/table"
	"github.com/oakestra/netmanager/test/nstest"
)

// serveName answers every TCP connection and UDP datagram on port, over IPv4
// and IPv6, with name.
func serveName(t *testing.T, ns *nstest.Netns, port, name string) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	if err := ns.Do(func() (err error) {
		if ln, err = net.Listen("tcp", ":"+port); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", ":"+port)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Let the client close first, so the TIME_WAIT state stays on the
			// client, whose kernel then picks a fresh source port for the next
			// connection (as any NAT path needs).
			go func(c net.Conn) {
				defer c.Close()
				_, _ = c.Write([]byte(name + "\n"))
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, _ = c.Read(make([]byte, 1))
			}(c)
		}
	}()
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(name), from)
		}
	}()
}

// ask connects from c to addr over network and returns the first line.
func ask(c *container, network, addr string) (string, error) {
	var conn net.Conn
	if err := c.ns.Do(func() (err error) { conn, err = net.DialTimeout(network, addr, 2*time.Second); return }); err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if strings.HasPrefix(network, "udp") {
		if _, err := conn.Write([]byte("?")); err != nil {
			return "", err
		}
		buf := make([]byte, 64)
		n, err := conn.Read(buf)
		return string(buf[:n]), err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// serviceIP returns an instance's IPv4 service IP for a policy.
func serviceIP(t *testing.T, n *node, name string, inst int, p table.Policy) string {
	t.Helper()
	return serviceIPOf(t, n, name, inst, p, false)
}

func serviceIPOf(t *testing.T, n *node, name string, inst int, p table.Policy, v6 bool) string {
	t.Helper()
	recs, err := n.d.Client.Services(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.ServiceName == name && r.Instance == inst {
			for _, s := range r.ServiceIPs {
				if s.Policy == p && s.Address.Is6() == v6 {
					return s.Address.String()
				}
			}
		}
	}
	t.Fatalf("no %s IP for %s/%d", p, name, inst)
	return ""
}

// Service IPs work through the user-space proxy: round robin over three
// instances for new TCP connections, UDP, an instance IP, ping; an undeployed
// instance gets no new flows; an unknown service IP gets nothing.
func TestUserspaceProxy(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	client := webServices(t, n)
	rr := assertServiceIPs(t, n, client)
	rr6 := assertServiceIPs6(t, n, client)
	// An instance's ICMP port unreachable comes back translated: a UDP
	// client of a closed port gets "connection refused".
	assertRefused(t, client, "udp4", net.JoinHostPort(rr, "9999"))
	assertRefused(t, client, "udp6", net.JoinHostPort(rr6, "9999"))
	undeploy(t, n, deploy.KindContainer, "app.ns.web.ns", 1)
	for i := 0; i < 4; i++ {
		name, err := ask(client, "tcp4", net.JoinHostPort(rr, "8080"))
		if err != nil || name == "web1" {
			_, st, _ := n.d.Client.Raw(ctx(t), http.MethodGet, "/proxy", nil)
			t.Fatalf("after undeploying web1, connection %d: %q %v (proxy: %s)", i, name, err, st)
		}
	}
	// A service IP with no instances: refused at once (ICMP host unreachable), never a hang.
	assertUnreachable(t, client, "10.30.250.250:8080")
	assertUnreachable(t, client, "[fdff:2000::ffff]:8080")
	var st struct {
		Enabled bool
		Stats   struct {
			Translated, NewSessions uint64
			Dropped                 map[string]uint64
		}
	}
	if err := n.d.Client.Do(ctx(t), http.MethodGet, "/proxy", nil, &st); err != nil || !st.Enabled || st.Stats.NewSessions < 8 || st.Stats.Dropped["no instances"] == 0 {
		t.Fatalf("GET /proxy: %+v %v", st, err)
	}
	for _, i := range []int{0, 2} {
		undeploy(t, n, deploy.KindContainer, "app.ns.web.ns", i)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.client.ns", 0)
	n.assertState(t, n.ready, "after the proxy test")
	n.stop(t)
}

// assertServiceIPs checks the IPv4 service IPs of app.ns.web.ns (three
// instances answering web0, web1, web2 on port 8080) from client, whichever
// proxy serves them: round robin over new TCP connections, UDP, an instance
// IP, and ping. It returns the round-robin IP.
func assertServiceIPs(t *testing.T, n *node, client *container) string {
	t.Helper()
	return assertServiceIPsOf(t, n, client, false)
}

// assertServiceIPs6 is assertServiceIPs over the IPv6 service IPs.
func assertServiceIPs6(t *testing.T, n *node, client *container) string {
	t.Helper()
	return assertServiceIPsOf(t, n, client, true)
}

func assertServiceIPsOf(t *testing.T, n *node, client *container, v6 bool) string {
	t.Helper()
	tcp, udp := "tcp4", "udp4"
	if v6 {
		tcp, udp = "tcp6", "udp6"
	}
	rr := serviceIPOf(t, n, "app.ns.web.ns", 0, table.PolicyRoundRobin, v6)
	var got []string
	for i := 0; i < 4; i++ {
		name, err := ask(client, tcp, net.JoinHostPort(rr, "8080"))
		if err != nil {
			t.Fatalf("TCP to the service IP %s: %v", rr, err)
		}
		got = append(got, name)
	}
	if strings.Join(got, ",") != "web0,web1,web2,web0" {
		t.Fatalf("round robin over new connections to %s: %v", rr, got)
	}
	if name, err := ask(client, udp, net.JoinHostPort(rr, "8080")); err != nil || !strings.HasPrefix(name, "web") {
		t.Fatalf("UDP to the service IP %s: %q %v", rr, name, err)
	}
	inst2 := serviceIPOf(t, n, "app.ns.web.ns", 2, table.PolicyInstance, v6)
	if name, err := ask(client, tcp, net.JoinHostPort(inst2, "8080")); err != nil || name != "web2" {
		t.Fatalf("instance IP %s: %q %v", inst2, name, err)
	}
	assertPing(t, client.ns, rr)
	return rr
}

// assertRefused requires a UDP exchange with addr to fail with "connection
// refused", the sender's reading of an ICMP port unreachable.
func assertRefused(t *testing.T, c *container, network, addr string) {
	t.Helper()
	_, err := ask(c, network, addr)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("UDP to the closed port %s: %v; want \"connection refused\"", addr, err)
	}
}

// assertUnreachable requires a connection to addr to fail quickly with "no
// route to host" (the proxy's ICMP answer), not by timing out.
func assertUnreachable(t *testing.T, c *container, addr string) {
	t.Helper()
	start := time.Now()
	_, err := ask(c, "tcp", addr)
	if err == nil || !strings.Contains(err.Error(), "no route to host") || time.Since(start) > time.Second {
		t.Fatalf("connect to %s: %v after %v; want a quick \"no route to host\"", addr, err, time.Since(start))
	}
}

// webServices deploys app.ns.web.ns with three instances answering web0, web1
// and web2 on port 8080, and a client; it returns the client.
func webServices(t *testing.T, n *node) *container {
	t.Helper()
	client := newContainer(t)
	deployContainer(t, n, client, "app.ns.client.ns", 0, "")
	for i, name := range []string{"web0", "web1", "web2"} {
		c := newContainer(t)
		deployContainer(t, n, c, "app.ns.web.ns", i, "")
		serveName(t, c.ns, "8080", name)
	}
	return client
}
