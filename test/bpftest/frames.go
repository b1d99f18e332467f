package bpftest

import (
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Fixed MACs for crafted frames.
var (
	MACA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	MACB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
)

// Serialize builds a frame from layers with lengths and checksums computed.
// Network layers are wired into transport layers for the pseudo-header.
func Serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	var netLayer gopacket.NetworkLayer
	for _, l := range ls {
		switch v := l.(type) {
		case *layers.IPv4:
			netLayer = v
		case *layers.IPv6:
			netLayer = v
		}
	}
	for _, l := range ls {
		switch v := l.(type) {
		case *layers.TCP:
			_ = v.SetNetworkLayerForChecksum(netLayer)
		case *layers.UDP:
			_ = v.SetNetworkLayerForChecksum(netLayer)
		case *layers.ICMPv6:
			_ = v.SetNetworkLayerForChecksum(netLayer)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// Eth returns an Ethernet header of the given type.
func Eth(typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: MACA, DstMAC: MACB, EthernetType: typ}
}

// IPv4 returns an IPv4 header from src to dst carrying proto.
func IPv4(src, dst string, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
}

// IPv6 returns an IPv6 header from src to dst with next header proto.
func IPv6(src, dst string, proto layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
}

// TCP returns a TCP SYN header.
func TCP(sport, dport uint16) *layers.TCP {
	return &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Window: 64240, Seq: 1}
}

// UDP returns a UDP header.
func UDP(sport, dport uint16) *layers.UDP {
	return &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
}

// Payload is raw bytes after the headers.
func Payload(b []byte) gopacket.Payload { return gopacket.Payload(b) }

// Decode parses a frame from its Ethernet header on.
func Decode(frame []byte) gopacket.Packet {
	return gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
}

// Sum16 adds the big-endian 16-bit words of b to sum in one's complement
// and folds it: 0xffff over a header whose checksum is right.
func Sum16(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return sum
}
