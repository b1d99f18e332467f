package proxy

import (
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/test/bpftest"
)

func TestUnreachable(t *testing.T) {
	syn := tcp(t, "10.18.0.2", "10.30.99.9", 40000, 80)
	out := Unreachable(syn)
	pk := gopacket.NewPacket(out, layers.LayerTypeIPv4, gopacket.Default)
	ip := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	icmp, ok := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if !ok || ip.SrcIP.String() != "10.30.99.9" || ip.DstIP.String() != "10.18.0.2" || icmp.TypeCode != layers.CreateICMPv4TypeCode(3, 1) {
		t.Fatalf("answer %v", pk)
	}
	if string(icmp.Payload) != string(syn[:28]) {
		t.Fatal("the answer does not quote the header and 8 bytes")
	}
	if checksum(out[:20]) != 0 || checksum(out[20:]) != 0 {
		t.Fatal("bad checksums")
	}
	errPkt := bpftest.Serialize(t, bpftest.IPv4("10.18.0.2", "10.30.99.9", layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)})
	frag := append([]byte(nil), syn...)
	frag[7] = 10
	for name, b := range map[string][]byte{"icmp error": errPkt, "later fragment": frag, "short": syn[:10]} {
		if Unreachable(b) != nil {
			t.Errorf("%s was answered", name)
		}
	}
}
