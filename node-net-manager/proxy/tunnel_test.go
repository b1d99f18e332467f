package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/table"
)

// merged answers lookups from several nodes' tables, as a cluster table would.
type merged []*table.Standalone

func (m merged) Lookup(ctx context.Context, q table.Query) ([]table.Entry, error) {
	var out []table.Entry
	for _, t := range m {
		es, err := t.Lookup(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, es...)
	}
	return out, nil
}

// cluster is two nodes: A (tunnel 127.0.0.1:portA, services on 10.18.0.0/24,
// service IPs from 10.30.0.0/17) with a client, and B (127.0.0.1:portB,
// 10.19.0.0/24, 10.30.128.0/17) with web0 and web1. (Each standalone table
// allocates its own service IPs; a cluster table would allocate them once.)
type cluster struct {
	a, b         *Translator
	aAddr, bAddr netip.AddrPort
	client       table.Entry
	web          []table.Entry // web0, web1 on B
	res          merged        // both nodes' tables
}

func newCluster(t *testing.T, aAddr, bAddr netip.AddrPort) *cluster {
	t.Helper()
	mk := func(rng string, self netip.AddrPort) *table.Standalone {
		tab, err := table.NewStandalone(table.Options{Range: netip.MustParsePrefix(rng), Node: table.Node{IP: self.Addr(), Port: int(self.Port())}})
		if err != nil {
			t.Fatal(err)
		}
		return tab
	}
	ta, tb := mk("10.30.0.0/17", aAddr), mk("10.30.128.0/17", bAddr)
	c := &cluster{aAddr: aAddr, bAddr: bAddr}
	c.client, _ = ta.Add(table.Instance{ServiceName: "app.ns.client.ns", NsIP: netip.MustParseAddr("10.18.0.2")})
	w0, _ := tb.Add(table.Instance{ServiceName: "app.ns.web.ns", Instance: 0, NsIP: netip.MustParseAddr("10.19.0.2")})
	w1, _ := tb.Add(table.Instance{ServiceName: "app.ns.web.ns", Instance: 1, NsIP: netip.MustParseAddr("10.19.0.3")})
	c.web, c.res = []table.Entry{w0, w1}, merged{ta, tb}
	c.a, c.b = c.translators(c.res, c.res)
	return c
}

// translators are A's and B's translators over the resolvers given.
func (c *cluster) translators(a, b Resolver) (*Translator, *Translator) {
	ranges := []netip.Prefix{netip.MustParsePrefix("10.30.0.0/16")}
	return NewTranslator(a, Options{Ranges: ranges, Timeout: time.Minute, Self: c.aAddr}),
		NewTranslator(b, Options{Ranges: ranges, Timeout: time.Minute, Self: c.bAddr})
}

var (
	nodeA = netip.MustParseAddrPort("127.0.0.1:50103")
	nodeB = netip.MustParseAddrPort("127.0.0.1:50104")
)

func TestTunnelRoundTrip(t *testing.T) {
	c := newCluster(t, nodeA, nodeB)
	rr := sip(c.web[0], table.PolicyRoundRobin)
	clientInst := sip(c.client, table.PolicyInstance)

	syn := tcp(t, "10.18.0.2", rr, 40000, 80)
	if v := c.a.Translate(syn); v.Drop != "" || v.Via != nodeB {
		t.Fatalf("A: %+v, want a tunnel to B", v)
	}
	if ip, _ := decoded(t, syn); ip.SrcIP.String() != clientInst || ip.DstIP.String() != "10.19.0.2" {
		t.Fatalf("A sent %s -> %s", ip.SrcIP, ip.DstIP)
	}
	sent := append([]byte(nil), syn...)
	if v := c.b.Receive(syn, nodeA); v != (Verdict{}) {
		t.Fatalf("B: %+v, want delivery", v)
	}
	if string(syn) != string(sent) {
		t.Fatal("B rewrote a packet it should deliver as it came")
	}
	reply := tcp(t, "10.19.0.2", clientInst, 80, 40000)
	if v := c.b.Translate(reply); v.Drop != "" || v.Via != nodeA {
		t.Fatalf("B reply: %+v, want a tunnel back to A", v)
	}
	if v := c.a.Receive(reply, nodeB); v != (Verdict{}) {
		t.Fatalf("A reply: %+v", v)
	}
	if ip, _ := decoded(t, reply); ip.SrcIP.String() != rr || ip.DstIP.String() != "10.18.0.2" {
		t.Fatalf("the client got %s -> %s", ip.SrcIP, ip.DstIP)
	}
	// The next connection goes to the next instance.
	syn2 := tcp(t, "10.18.0.2", rr, 40001, 80)
	c.a.Translate(syn2)
	if ip, _ := decoded(t, syn2); ip.DstIP.String() != "10.19.0.3" {
		t.Fatalf("second flow went to %s", ip.DstIP)
	}
	if sa, sb := c.a.Stats(), c.b.Stats(); sa.TunnelOut != 2 || sa.TunnelIn != 1 || sb.TunnelIn != 1 || sb.TunnelOut != 1 {
		t.Fatalf("stats A %+v, B %+v", sa, sb)
	}
}

func TestTunnelRefusesWhatItShouldNotCarry(t *testing.T) {
	c := newCluster(t, nodeA, nodeB)
	clientInst := sip(c.client, table.PolicyInstance)
	rr := sip(c.web[0], table.PolicyRoundRobin)
	cases := []struct {
		name string
		to   *Translator
		pkt  []byte
		from netip.AddrPort
		want string
	}{
		{"a source instance from another node address", c.b, tcp(t, clientInst, "10.19.0.2", 1, 80), netip.MustParseAddrPort("127.0.0.9:50103"), DropUnknownPeer},
		{"a source that is no instance", c.b, tcp(t, "10.18.0.2", "10.19.0.2", 1, 80), nodeA, DropUnknownPeer},
		{"a destination that is not on this node", c.b, tcp(t, clientInst, "10.19.0.99", 1, 80), nodeA, DropNotLocal},
		{"a local instance of the sender", c.a, tcp(t, clientInst, "10.18.0.2", 1, 80), nodeA, DropUnknownPeer},
		{"garbage", c.b, []byte{0x45, 0, 0}, nodeA, DropUnsupported},
	}
	for _, tc := range cases {
		b := append([]byte(nil), tc.pkt...)
		if v := tc.to.Receive(b, tc.from); v.Drop != tc.want {
			t.Errorf("%s: %+v, want %q", tc.name, v, tc.want)
		}
	}
	// A packet of a flow A tunnels out must not come back in.
	c.a.Translate(tcp(t, "10.18.0.2", rr, 40000, 80))
	if v := c.a.Receive(tcp(t, "10.18.0.2", rr, 40000, 80), nodeB); v.Drop != DropLoop {
		t.Fatalf("loop: %+v", v)
	}
}

// fakeTun is a TUN device in memory: the test writes what the kernel would
// route to it into in and reads what the proxy writes from out.
type fakeTun struct {
	in, out chan []byte
	closed  chan struct{}
}

func newFakeTun() *fakeTun {
	return &fakeTun{in: make(chan []byte, 8), out: make(chan []byte, 8), closed: make(chan struct{})}
}

func (f *fakeTun) Read(b []byte) (int, error) {
	select {
	case p := <-f.in:
		return copy(b, p), nil
	case <-f.closed:
		return 0, os.ErrClosed
	}
}

func (f *fakeTun) Write(b []byte) (int, error) {
	f.out <- append([]byte(nil), b...)
	return len(b), nil
}

func (f *fakeTun) next(t *testing.T) []byte {
	t.Helper()
	select {
	case p := <-f.out:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("nothing came out of the proxy")
		return nil
	}
}

// Run carries a flow between two nodes over real UDP sockets on loopback.
func TestRunOverUDP(t *testing.T) {
	c, ta, tb := runPair(t, nil)
	rr := sip(c.web[0], table.PolicyRoundRobin)
	ta.in <- tcp(t, "10.18.0.2", rr, 40000, 80)
	got, _ := decoded(t, tb.next(t))
	if got.SrcIP.String() != sip(c.client, table.PolicyInstance) || got.DstIP.String() != "10.19.0.2" {
		t.Fatalf("B's TUN got %s -> %s", got.SrcIP, got.DstIP)
	}
	tb.in <- tcp(t, "10.19.0.2", got.SrcIP.String(), 80, 40000)
	back, _ := decoded(t, ta.next(t))
	if back.SrcIP.String() != rr || back.DstIP.String() != "10.18.0.2" {
		t.Fatalf("A's TUN got %s -> %s", back.SrcIP, back.DstIP)
	}
}

// runPair runs nodes A and B of a cluster over real UDP sockets on
// loopback, each with its fake TUN; wrap, when set, makes their translators'
// resolvers from the cluster's tables. Cleanup stops both and fails the test
// if Run did.
func runPair(t *testing.T, wrap func(merged) (Resolver, Resolver)) (*cluster, *fakeTun, *fakeTun) {
	t.Helper()
	socket := func() net.PacketConn {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return pc
	}
	sa, sb := socket(), socket()
	c := newCluster(t, sa.LocalAddr().(*net.UDPAddr).AddrPort(), sb.LocalAddr().(*net.UDPAddr).AddrPort())
	if wrap != nil {
		c.a, c.b = c.translators(wrap(c.res))
	}
	ta, tb := newFakeTun(), newFakeTun()
	ctx, cancel := context.WithCancel(context.Background())
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	done := make(chan error, 2)
	for _, n := range []struct {
		tun *fakeTun
		tr  *Translator
		pc  net.PacketConn
	}{{ta, c.a, sa}, {tb, c.b, sb}} {
		go func() {
			done <- Run(ctx, RunOptions{Dev: n.tun, Translator: n.tr, Tunnel: n.pc, ExpireEvery: time.Minute, Log: log})
		}()
	}
	t.Cleanup(func() {
		cancel()
		close(ta.closed)
		close(tb.closed)
		sa.Close()
		sb.Close()
		for i := 0; i < 2; i++ {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	})
	return c, ta, tb
}

// fixedTable answers a lookup with the entries that have the address as a
// namespace or service IP.
type fixedTable []table.Entry

func (f fixedTable) Lookup(_ context.Context, q table.Query) ([]table.Entry, error) {
	var out []table.Entry
	for _, e := range f {
		match := e.NsIP == q.IP
		for _, s := range e.ServiceIPs {
			match = match || s.Address == q.IP
		}
		if match {
			out = append(out, e)
		}
	}
	return out, nil
}

// A closest service IP picks an instance on this node when there is one,
// whatever the round-robin turn; with none here, it spreads over the others.
func TestClosestPrefersThisNode(t *testing.T) {
	ip := netip.MustParseAddr
	closest := table.ServiceIP{Policy: table.PolicyClosest, Address: ip("10.30.9.1")}
	mk := func(n int, ns string, node netip.AddrPort) table.Entry {
		return table.Entry{ServiceName: "app.ns.web.ns", Instance: n, NsIP: ip(ns), NodeIP: node.Addr(), NodePort: int(node.Port()),
			ServiceIPs: []table.ServiceIP{closest, {Policy: table.PolicyInstance, Address: ip(fmt.Sprintf("10.30.9.%d", 2+n))}}}
	}
	client := table.Entry{ServiceName: "app.ns.cli.ns", NsIP: ip("10.18.0.2"), NodeIP: nodeA.Addr(), NodePort: int(nodeA.Port()),
		ServiceIPs: []table.ServiceIP{{Policy: table.PolicyInstance, Address: ip("10.30.8.2")}}}
	ranges := []netip.Prefix{netip.MustParsePrefix("10.30.0.0/16")}
	for _, c := range []struct {
		name    string
		entries []table.Entry
		want    []string // destinations of four new flows
	}{
		{"one here", []table.Entry{mk(0, "10.19.0.2", nodeB), mk(1, "10.18.0.3", nodeA), mk(2, "10.19.0.4", nodeB)},
			[]string{"10.18.0.3", "10.18.0.3", "10.18.0.3", "10.18.0.3"}},
		{"none here", []table.Entry{mk(0, "10.19.0.2", nodeB), mk(1, "10.19.0.3", nodeB)},
			[]string{"10.19.0.2", "10.19.0.3", "10.19.0.2", "10.19.0.3"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := fixedTable(append([]table.Entry{client}, c.entries...))
			tr := NewTranslator(res, Options{Ranges: ranges, Timeout: time.Minute, Self: nodeA})
			for i, want := range c.want {
				syn := tcp(t, "10.18.0.2", "10.30.9.1", uint16(40000+i), 80)
				if v := tr.Translate(syn); v.Drop != "" {
					t.Fatalf("flow %d dropped: %s", i, v.Drop)
				}
				if got, _ := decoded(t, syn); got.DstIP.String() != want {
					t.Fatalf("flow %d went to %s, want %s", i, got.DstIP, want)
				}
			}
		})
	}
}
