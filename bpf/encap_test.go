package bpf

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/test/bpftest"
)

// tunnel mirrors struct tunnel in testdata/encaptest.bpf.c.
type tunnel struct {
	Saddr, Daddr [4]byte
	Sport, Dport [2]byte // network byte order
	TTL          uint32
}

func be16(v uint16) [2]byte { var b [2]byte; binary.BigEndian.PutUint16(b[:], v); return b }

// The inter-node tunnel's encapsulation in the kernel puts the inner IP
// packet, byte for byte, behind an outer IPv4 header (DF, id 0, a correct
// checksum) and a UDP header (the tunnel ports, its length, checksum 0):
// the datagram the user-space tunnel sends, whose payload is the inner
// packet as read from its TUN. An IPv6 inner packet rides the same way.
func TestUDPTunnelEncap(t *testing.T) {
	bpftest.RequireRoot(t)
	coll := bpftest.Load(t, bpftest.Compile(t, "testdata/encaptest.bpf.c"))
	src, dst := netip.MustParseAddr("192.168.77.1"), netip.MustParseAddr("192.168.77.2")
	tun := tunnel{Saddr: src.As4(), Daddr: dst.As4(), Sport: be16(50103), Dport: be16(50104), TTL: 64}
	if err := coll.Maps["tunnels"].Put(uint32(0), tun); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"IPv4 TCP", bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), bpftest.IPv4("10.30.8.2", "10.18.2.2", layers.IPProtocolTCP),
			bpftest.TCP(40000, 7000), bpftest.Payload([]byte("hello through the tunnel")))},
		{"IPv6 UDP", bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv6), bpftest.IPv6("fdff:2000::8:2", "fd00:18:2::2", layers.IPProtocolUDP),
			bpftest.UDP(40000, 7000), bpftest.Payload([]byte("v6")))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, out := bpftest.Run(t, coll.Programs["encap_udp4"], tc.frame)
			if v != -1 || len(out) != len(tc.frame)+28 {
				t.Fatalf("verdict %s, %d bytes from %d", bpftest.Verdict(v), len(out), len(tc.frame))
			}
			inner := tc.frame[14:]
			ip, udp, payload := out[14:34], out[34:42], out[42:]
			switch {
			case !bytes.Equal(out[:12], tc.frame[:12]) || binary.BigEndian.Uint16(out[12:]) != uint16(layers.EthernetTypeIPv4):
				t.Fatalf("ethernet header % x", out[:14])
			case ip[0] != 0x45 || ip[1] != 0 || int(binary.BigEndian.Uint16(ip[2:])) != len(inner)+28 ||
				binary.BigEndian.Uint16(ip[4:]) != 0 || binary.BigEndian.Uint16(ip[6:]) != 0x4000 || ip[8] != 64 || ip[9] != 17 ||
				!bytes.Equal(ip[12:16], src.AsSlice()) || !bytes.Equal(ip[16:20], dst.AsSlice()):
				t.Fatalf("outer IPv4 header % x", ip)
			case bpftest.Sum16(0, ip) != 0xffff:
				t.Fatalf("outer IPv4 checksum wrong: % x", ip)
			case binary.BigEndian.Uint16(udp[0:]) != 50103 || binary.BigEndian.Uint16(udp[2:]) != 50104 ||
				int(binary.BigEndian.Uint16(udp[4:])) != len(inner)+8 || binary.BigEndian.Uint16(udp[6:]) != 0:
				t.Fatalf("UDP header % x", udp)
			case !bytes.Equal(payload, inner):
				t.Fatalf("payload is not the inner packet:\n% x\nwant\n% x", payload, inner)
			}
		})
	}
}
