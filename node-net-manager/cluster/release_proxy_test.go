package cluster_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/node-net-manager/proxy"
	"github.com/oakestra/netmanager/node-net-manager/table"
	"github.com/oakestra/netmanager/test/bpftest"
)

func udpPacket(t *testing.T, src, dst netip.Addr, sport, dport uint16) []byte {
	return bpftest.Serialize(t, bpftest.IPv4(src.String(), dst.String(), layers.IPProtocolUDP), bpftest.UDP(sport, dport), bpftest.Payload([]byte("x")))
}

func addrs(b []byte) (src, dst netip.Addr) {
	return netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
}

// A flow through the user-space proxy outlives the release of its
// service's job: its packets are translated by the flow's session, not by
// table lookups, both ways; a new flow to the service asks the cluster
// again.
func TestReleaseKeepsUserSpaceFlows(t *testing.T) {
	const after = 300 * time.Millisecond
	client := netip.MustParseAddr("10.18.1.2")
	w := newReleaseWorld(t, after, table.Instance{ServiceName: localJob, NsIP: client})
	rr := w.deployOnN2(t, remoteJob, "10.18.2.2")
	target := netip.MustParseAddr("10.18.2.2")
	waitFor(t, "the local job followed", func() bool { return len(lookup(t, w.tab, table.Query{ServiceName: localJob})) == 1 })
	tr := proxy.NewTranslator(w.tab, proxy.Options{Ranges: []netip.Prefix{netip.MustParsePrefix("10.30.0.0/16")}, Timeout: time.Minute, Self: n1Addr})

	p := udpPacket(t, client, rr, 4000, 80)
	if v := tr.Translate(p); v.Ask != rr {
		t.Fatalf("first packet: %+v, want to ask about %v", v, rr)
	}
	lookup(t, w.tab, table.Query{IP: rr}) // as the proxy's held packets do
	if v := tr.Translate(p); v.Via != n2Addr {
		t.Fatalf("first packet after the answer: %+v", v)
	}
	inst, dst := addrs(p)
	if dst != target {
		t.Fatalf("first packet to %v, want %v", dst, target)
	}
	waitFor(t, "the release mid-flow", func() bool { return !w.watching(remoteJob) && len(w.removals(t)) == 1 })

	p = udpPacket(t, client, rr, 4000, 80)
	if v := tr.Translate(p); v.Via != n2Addr || v.Drop != "" {
		t.Fatalf("the flow's packet after the release: %+v", v)
	}
	if src, dst := addrs(p); src != inst || dst != target {
		t.Fatalf("the flow's packet after the release: %v → %v, want %v → %v", src, dst, inst, target)
	}
	reply := udpPacket(t, target, inst, 80, 4000)
	if v := tr.Receive(reply, n2Addr); v.Via.IsValid() || v.Drop != "" {
		t.Fatalf("the flow's reply after the release: %+v", v)
	}
	if src, dst := addrs(reply); src != rr || dst != client {
		t.Fatalf("the flow's reply after the release: %v → %v, want %v → %v", src, dst, rr, client)
	}
	if v := tr.Translate(udpPacket(t, client, rr, 4001, 80)); v.Ask != rr {
		t.Fatalf("a new flow after the release: %+v, want to ask about %v", v, rr)
	}
}
