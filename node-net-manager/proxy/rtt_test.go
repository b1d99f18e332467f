package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/table"
)

func TestNearest(t *testing.T) {
	here, b, c := netip.MustParseAddrPort("192.0.2.1:50103"), netip.MustParseAddrPort("192.0.2.2:50103"), netip.MustParseAddrPort("192.0.2.3:50103")
	on := func(n int, node netip.AddrPort) table.Entry {
		return table.Entry{Instance: n, NodeIP: node.Addr(), NodePort: int(node.Port())}
	}
	local := func(e table.Entry) bool { return e.NodeIP == here.Addr() }
	node := func(e table.Entry) netip.AddrPort { return netip.AddrPortFrom(e.NodeIP, uint16(e.NodePort)) }
	ms := time.Millisecond
	for _, tc := range []struct {
		name string
		es   []table.Entry
		rtt  map[netip.AddrPort]time.Duration
		want []int
	}{
		{"this node first", []table.Entry{on(0, b), on(1, here), on(2, c)}, map[netip.AddrPort]time.Duration{b: ms, c: ms}, []int{1}},
		{"lowest RTT", []table.Entry{on(0, b), on(1, c), on(2, b)}, map[netip.AddrPort]time.Duration{b: 9 * ms, c: 2 * ms}, []int{1}},
		{"ties share", []table.Entry{on(0, b), on(1, c), on(2, b)}, map[netip.AddrPort]time.Duration{b: 2 * ms, c: 9 * ms}, []int{0, 2}},
		{"unknown RTT loses to a known one", []table.Entry{on(0, b), on(1, c)}, map[netip.AddrPort]time.Duration{c: 50 * ms}, []int{1}},
		{"no RTT known: all", []table.Entry{on(0, b), on(1, c)}, nil, []int{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := nearest(tc.es, local, node, tc.rtt)
			var ns []int
			for _, e := range got {
				ns = append(ns, e.Instance)
			}
			if fmt.Sprint(ns) != fmt.Sprint(tc.want) {
				t.Fatalf("instances %v, want %v", ns, tc.want)
			}
		})
	}
}

// fakePeer is another node's tunnel endpoint: it answers RTT probes after
// delay and counts the IP packets it gets.
type fakePeer struct {
	pc      net.PacketConn
	packets chan []byte
}

func newFakePeer(t *testing.T, delay time.Duration) *fakePeer {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &fakePeer{pc: pc, packets: make(chan []byte, 64)}
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if isProbe(buf[:n]) && buf[4] == probeAsk {
				echo := append([]byte(nil), buf[:n]...)
				echo[4] = probeEcho
				time.AfterFunc(delay, func() { _, _ = pc.WriteTo(echo, from) })
				continue
			}
			p.packets <- append([]byte(nil), buf[:n]...)
		}
	}()
	t.Cleanup(func() { pc.Close() })
	return p
}

func (p *fakePeer) addr() netip.AddrPort { return p.pc.LocalAddr().(*net.UDPAddr).AddrPort() }

// A closest service IP with no instance on this node goes to the node with
// the lowest tunnel RTT once the probes have measured them.
func TestClosestByRTT(t *testing.T) {
	far, near := newFakePeer(t, 40*time.Millisecond), newFakePeer(t, 0)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	self := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	ip := netip.MustParseAddr
	closest := table.ServiceIP{Policy: table.PolicyClosest, Address: ip("10.30.9.1")}
	res := fixedTable{
		{ServiceName: "app.ns.cli.ns", NsIP: ip("10.18.0.2"), NodeIP: self.Addr(), NodePort: int(self.Port()),
			ServiceIPs: []table.ServiceIP{{Policy: table.PolicyInstance, Address: ip("10.30.8.2")}}},
		{ServiceName: "app.ns.web.ns", Instance: 0, NsIP: ip("10.19.0.2"), NodeIP: far.addr().Addr(), NodePort: int(far.addr().Port()), ServiceIPs: []table.ServiceIP{closest}},
		{ServiceName: "app.ns.web.ns", Instance: 1, NsIP: ip("10.20.0.2"), NodeIP: near.addr().Addr(), NodePort: int(near.addr().Port()), ServiceIPs: []table.ServiceIP{closest}},
	}
	tr := NewTranslator(res, Options{Ranges: []netip.Prefix{netip.MustParsePrefix("10.30.0.0/16")}, Timeout: time.Minute, Self: self})
	tun := newFakeTun()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, RunOptions{Dev: tun, Translator: tr, Tunnel: pc, ExpireEvery: time.Minute, ProbeEvery: 20 * time.Millisecond, Log: logrus.New()})
	}()
	defer func() {
		cancel()
		close(tun.closed)
		pc.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	tun.in <- tcp(t, "10.18.0.2", "10.30.9.1", 40000, 80) // the first flow: no RTT known, round robin
	select {
	case <-far.packets:
	case <-near.packets:
	case <-time.After(5 * time.Second):
		t.Fatal("the first flow went nowhere")
	}
	waitFor(t, func() bool { return len(tr.Stats().PeerRTTms) == 2 })
	if r := tr.Stats().PeerRTTms; r[far.addr().String()] <= r[near.addr().String()] {
		t.Fatalf("RTTs %v: the far node measured no farther", r)
	}
	for i := 1; i <= 4; i++ {
		tun.in <- tcp(t, "10.18.0.2", "10.30.9.1", uint16(40000+i), 80)
		select {
		case b := <-near.packets:
			if got, _ := decoded(t, b); got.DstIP.String() != "10.20.0.2" {
				t.Fatalf("flow %d reached the near node for %s", i, got.DstIP)
			}
		case <-far.packets:
			t.Fatalf("flow %d went to the far node, RTTs %v", i, tr.Stats().PeerRTTms)
		case <-time.After(5 * time.Second):
			t.Fatalf("flow %d went nowhere", i)
		}
	}
}
