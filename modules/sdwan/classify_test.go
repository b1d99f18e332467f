package main

import (
	"encoding/binary"
	"math"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/test/bpftest"
)

// wanOf names the WAN an encapsulated frame went to by its outer source.
func wanOf(t testing.TB, v int32, out []byte) string {
	t.Helper()
	if v != redirect {
		return bpftest.Verdict(v)
	}
	switch netip.AddrFrom4([4]byte(out[26:30])).String() {
	case "192.0.2.1":
		return "wan1"
	case "198.51.100.1":
		return "wan2"
	}
	t.Fatalf("unexpected outer source in %x", out[:40])
	return ""
}

// The matching PDR with the lowest precedence value wins, whatever the
// order of the rules; unmatched traffic gets the default policy.
func TestPrecedence(t *testing.T) {
	w := newGW(t, `[
	  {"id": 1, "precedence": 20, "dst": "10.2.0.0/16", "action": "redirect", "target": "wan1"},
	  {"id": 2, "precedence": 10, "dst": "10.2.5.0/24", "proto": "tcp", "action": "drop"},
	  {"id": 3, "precedence": 5, "dst": "10.2.0.0/16", "proto": "tcp", "dstPorts": "22", "action": "pass"},
	  {"id": 4, "precedence": 1, "src": "10.1.0.0/24", "dst": "10.2.9.0/24", "tos": 184, "action": "redirect", "target": "wan2"},
	  {"id": 5, "precedence": 30, "dst": "10.2.9.0/24", "action": "redirect", "target": "lan"}
	]`, `[]`, "")
	for _, c := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"tcp into the /24", lanTCP(t, "10.2.5.1", 1000, 80, 0, 10), "SHOT"},
		{"ssh into the /24: precedence 5 beats 10", lanTCP(t, "10.2.5.1", 1000, 22, 0, 10), "NEXT(TC_ACT_UNSPEC)"},
		{"udp into the /24: only rule 1", lanUDP(t, "10.2.5.1", 1000, 80, 0), "wan1"},
		{"tcp elsewhere in the /16", lanTCP(t, "10.2.6.1", 1000, 80, 0, 10), "wan1"},
		{"EF ToS to 10.2.9/24", lanUDP(t, "10.2.9.9", 1000, 80, 184), "wan2"},
		{"EF with ECN bits set", lanUDP(t, "10.2.9.9", 1001, 80, 184|1), "wan2"},
		{"best effort to 10.2.9/24: rule 1 before rule 5", lanUDP(t, "10.2.9.9", 1000, 80, 0), "wan1"},
		{"outside every rule", lanUDP(t, "10.3.0.1", 1000, 80, 0), "NEXT(TC_ACT_UNSPEC)"},
	} {
		v, out := w.run(t, "lan0", c.frame)
		if got := wanOf(t, v, out); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	if n := w.counter(t, "farDrop"); n != 1 {
		t.Errorf("farDrop %d, want 1", n)
	}
	if n := w.counter(t, "noMatch"); n != 1 {
		t.Errorf("noMatch %d, want 1", n)
	}
}

// A rule to the LAN leaves the packet to the kernel's routing.
func TestRedirectToLAN(t *testing.T) {
	w := newGW(t, `[{"id": 1, "dst": "10.1.0.0/16", "action": "redirect", "target": "lan"}]`, `[]`, "")
	if v, _ := w.run(t, "lan0", lanUDP(t, "10.1.7.7", 1, 2, 0)); v != next || w.counter(t, "toLan") != 1 {
		t.Fatalf("verdict %s, toLan %d", bpftest.Verdict(v), w.counter(t, "toLan"))
	}
}

const lbrRule = `[{"id": 1, "dst": "10.2.0.0/16", "action": "redirect", "target": "lbr"}]`

// lbrShare sends one UDP packet each of n flows and returns the share that
// went to wan1 and each flow's WAN.
func lbrShare(t *testing.T, w *gw, n int, tos uint8, base uint16) (float64, []string) {
	var on1 int
	got := make([]string, n)
	for i := 0; i < n; i++ {
		v, out := w.run(t, "lan0", lanUDP(t, "10.2.0.7", base+uint16(i), 5001, tos))
		got[i] = wanOf(t, v, out)
		if got[i] == "wan1" {
			on1++
		}
	}
	return float64(on1) / float64(n), got
}

// LBR weights 3:1 share new flows 75/25 (within 4 points over 4000 flows);
// each flow keeps its WAN.
func TestLBRWeightsAndStickiness(t *testing.T) {
	w := newGW(t, lbrRule, `[{"default": true, "overlays": [{"wan": "wan1", "weight": 3}, {"wan": "wan2", "weight": 1}]}]`, "")
	share, first := lbrShare(t, w, 4000, 0, 1000)
	if math.Abs(share-0.75) > 0.04 {
		t.Fatalf("wan1 carries %.3f of the flows, want 0.75 ± 0.04", share)
	}
	_, again := lbrShare(t, w, 4000, 0, 1000)
	for i := range first {
		if first[i] != again[i] {
			t.Fatalf("flow %d moved from %s to %s", i, first[i], again[i])
		}
	}
}

// A class's own LBR overrides the default; a weight change (or an SLA
// move) steers new flows only; when a WAN goes down its flows fail over
// and come back to none of it until it is up.
func TestLBRClassesAndFailover(t *testing.T) {
	w := newGW(t, lbrRule, `[{"default": true, "overlays": [{"wan": "wan1", "weight": 1}]},
	  {"tos": 32, "overlays": [{"wan": "wan2", "weight": 1}]}]`, "")
	if share, _ := lbrShare(t, w, 50, 32, 1000); share != 0 {
		t.Fatalf("class 32 put %.2f on wan1, want all on wan2", share)
	}
	if share, _ := lbrShare(t, w, 50, 0, 2000); share != 1 {
		t.Fatalf("the default class put %.2f on wan1, want all", share)
	}
	if err := w.g.applyLBRs("update", []LBRConfig{{Default: true, Overlays: []Overlay{{WAN: "wan2", Weight: 1}}}}); err != nil {
		t.Fatal(err)
	}
	if share, _ := lbrShare(t, w, 50, 0, 2000); share != 1 {
		t.Fatalf("after the LBR change existing flows moved: %.2f left on wan1", share)
	}
	if share, _ := lbrShare(t, w, 50, 0, 3000); share != 0 {
		t.Fatalf("new flows still go to wan1: %.2f", share)
	}
	w.setUp(t, 0, false)
	if share, _ := lbrShare(t, w, 50, 0, 2000); share != 0 {
		t.Fatalf("flows stayed on wan1 while it is down: %.2f", share)
	}
	if n := w.counter(t, "failover"); n != 50 {
		t.Fatalf("failover %d, want 50", n)
	}
	w.setUp(t, 1, false) // both down: nothing to send on
	if v, _ := w.run(t, "lan0", lanUDP(t, "10.2.0.7", 9, 9, 0)); v != next || w.counter(t, "noWan") != 1 {
		t.Fatalf("with both WANs down: %s, noWan %d", bpftest.Verdict(v), w.counter(t, "noWan"))
	}
}

// setUp marks a WAN up or down as its probes would.
func (w *gw) setUp(t testing.TB, wan int, up bool) {
	t.Helper()
	ws := w.g.wans[wan]
	ws.mu.Lock()
	ws.h.up = up
	ws.mu.Unlock()
	w.g.healthChanged(wan, true)
}

// A rule change applies to flows already cached: the next packet of a
// flow redirected before is judged by the new rule set.
func TestRuleChangeReachesCachedFlows(t *testing.T) {
	w := newGW(t, `[{"id": 1, "dst": "10.2.0.0/16", "action": "redirect", "target": "wan1"}]`, `[]`, "")
	frame := lanUDP(t, "10.2.0.7", 1000, 5001, 0)
	if v, out := w.run(t, "lan0", frame); wanOf(t, v, out) != "wan1" {
		t.Fatal("not redirected to wan1")
	}
	for _, c := range []struct {
		ch   ruleChange
		want string
	}{
		{ruleChange{op: "update", rules: []Rule{{ID: 1, Precedence: 10, Dst: "10.2.0.0/16", Action: "drop"}}}, "SHOT"},
		{ruleChange{op: "create", rules: []Rule{{ID: 2, Precedence: 1, Dst: "10.2.0.7/32", Action: "redirect", Target: "wan2"}}}, "wan2"},
		{ruleChange{op: "delete", delete: []uint32{2}}, "SHOT"},
		{ruleChange{op: "delete", delete: []uint32{1}}, "NEXT(TC_ACT_UNSPEC)"},
	} {
		if err := w.g.applyRules(c.ch); err != nil {
			t.Fatal(err)
		}
		if v, out := w.run(t, "lan0", frame); wanOf(t, v, out) != c.want {
			t.Fatalf("after %s: %s, want %s", c.ch.op, wanOf(t, v, out), c.want)
		}
	}
}

// Too big for the WAN after the 24 bytes of encapsulation: dropped and
// counted, never truncated; GSO packets are judged by their segments.
func TestMTU(t *testing.T) {
	w := newGW(t, `[{"id": 1, "dst": "10.2.0.0/16", "action": "redirect", "target": "wan2"}]`, `[]`, "") // wan2 MTU 1400
	fits := lanTCP(t, "10.2.0.7", 1, 2, 0, 1400-24-40)
	if v, _ := w.run(t, "lan0", fits); v != redirect {
		t.Fatalf("a packet that fits: %s", bpftest.Verdict(v))
	}
	if v, _ := w.run(t, "lan0", lanTCP(t, "10.2.0.7", 1, 2, 0, 1400-24-40+1)); v != drop || w.counter(t, "mtuDrop") != 1 {
		t.Fatalf("one byte too big: %s, mtuDrop %d", bpftest.Verdict(v), w.counter(t, "mtuDrop"))
	}
	big := lanTCP(t, "10.2.0.7", 1, 2, 0, 2800) // test runs take at most a page
	if v, _ := w.run(t, "lan0", big, 1400-40+1); v != drop || w.counter(t, "mtuDrop") != 2 {
		t.Fatalf("GSO segments too big: %s", bpftest.Verdict(v))
	}
	// A GSO packet that fits is encapsulated on live traffic only (the
	// integration test's iperf3): test runs cannot set the skb's GSO type,
	// and the kernel refuses room in a GSO packet of no known type.
}

// A SYN's MSS is lowered to what fits the WAN after encapsulation
// (1400 - 24 - 20 - 20 = 1336), with a correct TCP checksum.
func TestMSSClamp(t *testing.T) {
	w := newGW(t, `[{"id": 1, "dst": "10.2.0.0/16", "action": "redirect", "target": "wan2"}]`, `[]`, "")
	syn := func(mss uint16) []byte {
		tcp := bpftest.TCP(40000, 5001)
		tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: binary.BigEndian.AppendUint16(nil, mss)},
			{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}}, {OptionType: layers.TCPOptionKindNop}}
		return bpftest.Serialize(t, ip4("10.1.0.5", "10.2.0.7", layers.IPProtocolTCP, 0), tcp)
	}
	for _, c := range []struct {
		mss, want uint16
		clamped   uint64
	}{{1460, 1336, 1}, {1200, 1200, 1}} {
		v, out := w.run(t, "lan0", append(ethBytes(bpftest.MACB, bpftest.MACA, layers.EthernetTypeIPv4), syn(c.mss)...))
		if v != redirect {
			t.Fatalf("SYN: %s", bpftest.Verdict(v))
		}
		want := syn(c.want)
		want[8]--
		binary.BigEndian.PutUint16(want[10:], 0)
		binary.BigEndian.PutUint16(want[10:], ipChecksum(want[:20]))
		same(t, "inner SYN", out[14+24:14+24+len(want)], want)
		if n := w.counter(t, "mssClamped"); n != c.clamped {
			t.Fatalf("mssClamped %d, want %d", n, c.clamped)
		}
	}
}

// A probe request from the peer is reflected on the WAN it came in on; a
// reply is passed up to the prober's socket.
func TestProbeReflection(t *testing.T) {
	w := newGW(t, `[]`, `[]`, "")
	req := probePacket(1, 42, 12345)
	v, out := w.run(t, "wan1", greFrame(t, "192.0.2.2", "192.0.2.1", sdProbeProto, req[4:]))
	if v != redirect {
		t.Fatalf("probe request: %s", bpftest.Verdict(v))
	}
	reply := append([]byte(nil), req[4:]...)
	reply[4] = sdProbeReply
	want := greFrame(t, "192.0.2.1", "192.0.2.2", sdProbeProto, reply)
	copy(want, ethBytes(bpftest.MACA, bpftest.MACB, layers.EthernetTypeIPv4)) // MACs swapped
	same(t, "reflected probe", out[:len(want)], want)
	if seq, err := parseReply(out[14:len(want)], 1); err != nil || seq != 42 {
		t.Fatalf("the prober reads seq %d, %v from the reflected probe", seq, err)
	}
	if v, _ := w.run(t, "wan1", greFrame(t, "192.0.2.2", "192.0.2.1", sdProbeProto, reply)); v != next || w.counter(t, "probeReplies") != 1 {
		t.Fatalf("probe reply: %s", bpftest.Verdict(v))
	}
}
