package proxy

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/table"
)

// Node B's address changes while its table (and A's) still carry the old
// one: B goes on taking A's flows to its instances and tunnels the replies
// back, and entries at the new address are B's too; A, told the new
// address, tunnels to it.
func TestSetSelfKeepsLocalEntries(t *testing.T) {
	c := newCluster(t, nodeA, nodeB)
	moved := netip.MustParseAddrPort("127.0.0.2:50104")
	c.b.SetSelf(moved)
	if c.b.Self() != moved {
		t.Fatalf("Self %v after SetSelf(%v)", c.b.Self(), moved)
	}
	clientInst := sip(c.client, table.PolicyInstance)
	syn := tcp(t, clientInst, "10.19.0.2", 40000, 80)
	if v := c.b.Receive(syn, nodeA); v != (Verdict{}) {
		t.Fatalf("B after the move, an entry at its old address: %+v, want delivery", v)
	}
	if v := c.b.Translate(tcp(t, "10.19.0.2", clientInst, 80, 40000)); v.Drop != "" || v.Via != nodeA {
		t.Fatalf("B's reply: %+v, want the tunnel to A", v)
	}
	e := c.web[0]
	e.NodeIP = moved.Addr()
	if !c.b.local(e) || c.a.local(e) {
		t.Fatalf("an entry at the new address: local to B %v (want true), to A %v (want false)", c.b.local(e), c.a.local(e))
	}
	if via := c.a.via(e); via != moved {
		t.Fatalf("A tunnels to %v, want %v", via, moved)
	}
	// Moving back: the new address becomes a former one, the old one self.
	c.b.SetSelf(nodeB)
	if !c.b.local(e) || c.b.former[nodeB.Addr()] {
		t.Fatalf("after moving back: local %v, former %v", c.b.local(e), c.b.former)
	}
}

// A tunnel rebound to another address: a reader blocked on the old socket
// reads from the new one, datagrams leave from the new address, and the
// old address is free.
func TestTunnelRebind(t *testing.T) {
	tun, err := ListenTunnel(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	old := tun.AddrPort()
	type got struct {
		b    string
		from net.Addr
		err  error
	}
	reads := make(chan got, 1)
	go func() {
		buf := make([]byte, 100)
		n, from, err := tun.ReadFrom(buf)
		reads <- got{string(buf[:n]), from, err}
	}()
	time.Sleep(50 * time.Millisecond) // the reader waits on the old socket
	moved := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), old.Port())
	if err := tun.Rebind(moved); err != nil {
		t.Fatal(err)
	}
	if tun.AddrPort() != moved {
		t.Fatalf("bound to %v after Rebind(%v)", tun.AddrPort(), moved)
	}
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := peer.WriteToUDPAddrPort([]byte("hello"), moved); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-reads:
		if r.err != nil || r.b != "hello" {
			t.Fatalf("read %q %v", r.b, r.err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the reader did not go on with the new socket")
	}
	if _, err := tun.WriteTo([]byte("back"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := peer.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "back" || from != moved {
		t.Fatalf("the peer got %q from %v (%v), want from %v", buf[:n], from, err, moved)
	}
	again, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(old))
	if err != nil {
		t.Fatalf("the old address is still bound: %v", err)
	}
	again.Close()
	if err := tun.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tun.ReadFrom(buf); err == nil {
		t.Fatal("read from a closed tunnel")
	}
	if err := tun.Rebind(old); err == nil {
		t.Fatal("rebound a closed tunnel")
	}
}
