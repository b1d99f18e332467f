package proxy

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/node-net-manager/table"
	"github.com/oakestra/netmanager/test/bpftest"
)

// icmp4Error builds the ICMP error a host at from sends to the sender of quoted.
func icmp4Error(t *testing.T, from, to string, typ, code uint8, quoted []byte) []byte {
	return bpftest.Serialize(t, bpftest.IPv4(from, to, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code)}, bpftest.Payload(quoted))
}

func icmp6Error(t *testing.T, from, to string, typ, code uint8, rest uint32, quoted []byte) []byte {
	payload := binary.BigEndian.AppendUint32(nil, rest)
	return bpftest.Serialize(t, bpftest.IPv6(from, to, layers.IPProtocolICMPv6),
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}, bpftest.Payload(append(payload, quoted...)))
}

// The instance's "port unreachable" reaches the sender as if the service IP
// had sent it, quoting the packet exactly as the sender sent it.
func TestICMPErrorTranslatedBack(t *testing.T) {
	w := newWorld(t)
	// web2's instance IP: a translation that does not merely swap the two
	// addresses, so a checksum left alone would show.
	rr := sip(w.web[2], table.PolicyInstance)
	orig := udp(t, "10.18.0.2", rr, 5000, 7000)
	sent := append([]byte(nil), orig...)
	if v := w.tr.Translate(sent); v.Drop != "" {
		t.Fatal(v.Drop)
	}
	clientInst := sip(w.client, table.PolicyInstance)
	e := icmp4Error(t, "10.18.0.5", clientInst, 3, 3, sent)
	if v := w.tr.Translate(e); v != (Verdict{}) {
		t.Fatalf("verdict %+v", v)
	}
	ip, pk := decoded(t, e)
	if ip.SrcIP.String() != rr || ip.DstIP.String() != "10.18.0.2" {
		t.Fatalf("error %s -> %s, want %s -> 10.18.0.2", ip.SrcIP, ip.DstIP, rr)
	}
	icmp := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if checksum(e[20:]) != 0 {
		t.Fatal("ICMP checksum is wrong")
	}
	if string(icmp.Payload) != string(orig) {
		t.Fatalf("the error quotes\n%x\nthe client sent\n%x", icmp.Payload, orig)
	}
	// An error quoting nothing this proxy translated is dropped.
	stray := icmp4Error(t, "10.18.0.3", clientInst, 3, 3, udp(t, clientInst, "10.18.0.3", 9, 9))
	if v := w.tr.Translate(stray); v.Drop != DropICMPNoFlow {
		t.Fatalf("stray error: %+v", v)
	}
}

// "Packet too big" for an IPv6 TCP flow, quoting only the start of the
// packet, reaches the sender translated back (path MTU discovery works).
func TestICMPv6ErrorTranslatedBack(t *testing.T) {
	w := newWorld6(t)
	rr := sip6(w.web[2], table.PolicyInstance)
	orig := tcp6(t, "fd00:18::2", rr, 40000, 80)
	sent := append([]byte(nil), orig...)
	w.tr.Translate(sent)
	quoted := sent[:48] // the IPv6 header and the first 8 bytes of TCP
	e := icmp6Error(t, "fd00:18::5", sip6(w.client, table.PolicyInstance), 2, 0, 1280, quoted)
	if v := w.tr.Translate(e); v != (Verdict{}) {
		t.Fatalf("verdict %+v", v)
	}
	if got := netip.AddrFrom16([16]byte(e[8:24])).String(); got != rr {
		t.Fatalf("outer source %s, want %s", got, rr)
	}
	if got := netip.AddrFrom16([16]byte(e[24:40])).String(); got != "fd00:18::2" {
		t.Fatalf("outer destination %s", got)
	}
	if checksum6(e[8:24], e[24:40], protoICMPv6, e[40:]) != 0 {
		t.Fatal("ICMPv6 checksum is wrong")
	}
	if binary.BigEndian.Uint32(e[44:48]) != 1280 {
		t.Fatal("the MTU changed")
	}
	if string(e[48:]) != string(orig[:48]) {
		t.Fatalf("the error quotes\n%x\nthe client sent\n%x", e[48:], orig[:48])
	}
}

// An error about a flow between nodes goes back through the tunnel and is
// translated on the sender's node.
func TestICMPErrorThroughTunnel(t *testing.T) {
	c := newCluster(t, nodeA, nodeB)
	rr := sip(c.web[0], table.PolicyRoundRobin)
	clientInst := sip(c.client, table.PolicyInstance)
	orig := udp(t, "10.18.0.2", rr, 5000, 7000)
	sent := append([]byte(nil), orig...)
	c.a.Translate(sent)
	c.b.Receive(append([]byte(nil), sent...), nodeA)
	e := icmp4Error(t, "10.19.0.2", clientInst, 3, 3, sent)
	if v := c.b.Translate(e); v.Drop != "" || v.Via != nodeA {
		t.Fatalf("B: %+v, want the tunnel to A", v)
	}
	if v := c.a.Receive(e, nodeB); v != (Verdict{}) {
		t.Fatalf("A: %+v", v)
	}
	ip, pk := decoded(t, e)
	if ip.SrcIP.String() != rr || ip.DstIP.String() != "10.18.0.2" || string(pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4).Payload) != string(orig) {
		t.Fatalf("the client got %s -> %s", ip.SrcIP, ip.DstIP)
	}
}
