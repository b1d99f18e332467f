package bpf

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/test/bpftest"
)

// result mirrors struct result in testdata/parsetest.bpf.c.
type result struct {
	L3, L4, L4Status  int32
	L4Off, PayloadOff uint32
	Sport, Dport      uint16
	IPCsum, IPCheck   uint16
}

func loadParse(t *testing.T) *ebpf.Collection {
	t.Helper()
	bpftest.RequireRoot(t)
	return bpftest.Load(t, bpftest.Compile(t, "testdata/parsetest.bpf.c"))
}

func parse(t *testing.T, coll *ebpf.Collection, frame []byte) result {
	t.Helper()
	verdict, out := bpftest.Run(t, coll.Programs["parse"], frame)
	if verdict != -1 {
		t.Fatalf("parse returned %s, want NEXT", bpftest.Verdict(verdict))
	}
	if string(out) != string(frame) {
		t.Fatal("parse changed the frame")
	}
	var r result
	if err := coll.Maps["results"].Lookup(uint32(0), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParse(t *testing.T) {
	coll := loadParse(t)
	withOpts := bpftest.IPv4("10.0.0.1", "10.0.0.2", layers.IPProtocolTCP)
	withOpts.Options = []layers.IPv4Option{{OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}}} // record route, padded to 8
	frag := bpftest.IPv4("10.0.0.1", "10.0.0.2", layers.IPProtocolUDP)
	frag.FragOffset = 100
	firstFrag := bpftest.IPv4("10.0.0.1", "10.0.0.2", layers.IPProtocolUDP)
	firstFrag.Flags = layers.IPv4MoreFragments
	tcpOpts := bpftest.TCP(1234, 80)
	tcpOpts.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}}}
	hop := &layers.IPv6HopByHop{}
	hop.NextHeader = layers.IPProtocolUDP
	hop.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: []byte{0, 0, 0, 0}}}
	v6hop := bpftest.IPv6("fd00::1", "fd00::2", layers.IPProtocolIPv6HopByHop)
	vlan := &layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeIPv4}

	cases := []struct {
		name  string
		frame []byte
		want  result // fields compared: L3, L4, L4Status, L4Off, PayloadOff, Sport, Dport
	}{
		{"ipv4 tcp", bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), bpftest.IPv4("10.0.0.1", "10.0.0.2", layers.IPProtocolTCP), bpftest.TCP(1234, 80)),
			result{L3: 0x0800, L4: 6, L4Status: 0, L4Off: 34, PayloadOff: 54, Sport: 1234, Dport: 80}},
		{"ipv4 options, tcp options", bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), withOpts, tcpOpts),
			result{L3: 0x0800, L4: 6, L4Status: 0, L4Off: 42, PayloadOff: 66, Sport: 1234, Dport: 80}},
		{"ipv4 udp", bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), bpftest.IPv4("10.0.0.1", "10.0.0.2", layers.IPProtocolUDP), bpftest.UDP(53, 5353), bpftest.Payload([]byte("x"))),
			result{L3: 0x0800, L4: 17, L4Status: 0, L4Off: 34, PayloadOff: 42, Sport: 53, Dport: 5353}},
		{"ipv4 icmp", bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), bpftest.IPv4("10.0.0.1", "10.0.0.2", layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}),
			result{L3: 0x0800, L4: 1, L4Status: 0, L4Off: 34, PayloadOff: 42}},
		{"vlan-tagged ipv4", bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeDot1Q), vlan, bpftest.IPv4("10.0.0.1", "10.0.0.2", layers.IPProtocolUDP), bpftest.UDP(1, 2)),
			result{L3: 0x0800, L4: 17, L4Status: 0, L4Off: 38, PayloadOff: 46, Sport: 1, Dport: 2}},
		{"non-first ipv4 fragment", bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), frag, bpftest.Payload(make([]byte, 16))),
			result{L3: 0x0800, L4: 44, L4Status: -2, L4Off: 34, PayloadOff: 34}},
		{"first ipv4 fragment", bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), firstFrag, bpftest.UDP(7, 8)),
			result{L3: 0x0800, L4: 17, L4Status: 0, L4Off: 34, PayloadOff: 42, Sport: 7, Dport: 8}},
		{"ipv6 tcp", bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv6), bpftest.IPv6("fd00::1", "fd00::2", layers.IPProtocolTCP), bpftest.TCP(4000, 443)),
			result{L3: 0x86dd, L4: 6, L4Status: 0, L4Off: 54, PayloadOff: 74, Sport: 4000, Dport: 443}},
		{"ipv6 hop-by-hop then udp", bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv6), v6hop, hop, bpftest.UDP(9, 10)),
			result{L3: 0x86dd, L4: 17, L4Status: 0, L4Off: 62, PayloadOff: 70, Sport: 9, Dport: 10}},
		{"ipv6 icmpv6", bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv6), bpftest.IPv6("fd00::1", "fd00::2", layers.IPProtocolICMPv6), &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}, bpftest.Payload(make([]byte, 4))),
			result{L3: 0x86dd, L4: 58, L4Status: 0, L4Off: 54, PayloadOff: 62}}, // uapi icmp6hdr is 8 bytes
		{"arp", bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeARP), bpftest.Payload(make([]byte, 28))),
			result{L3: 0x0806, L4: -2, L4Status: -2, L4Off: 14, PayloadOff: 14}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := parse(t, coll, c.frame)
			got.IPCsum, got.IPCheck = 0, 0
			if got != c.want {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestParseRejectsTruncatedAndMalformed(t *testing.T) {
	coll := loadParse(t)
	good := bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), bpftest.IPv4("10.0.0.1", "10.0.0.2", layers.IPProtocolTCP), bpftest.TCP(1, 2))
	good6 := bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv6), bpftest.IPv6("fd00::1", "fd00::2", layers.IPProtocolUDP), bpftest.UDP(1, 2))
	mutate := func(b []byte, f func([]byte)) []byte {
		c := append([]byte(nil), b...)
		f(c)
		return c
	}
	cases := []struct {
		name           string
		frame          []byte
		l3, l4, status int32
	}{
		// BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header, or
		// than a fixed IPv4/IPv6 header for those ethertypes, so truncation is
		// tested past those minimums.
		{"vlan tag cut", mutate(good[:16], func(b []byte) { binary.BigEndian.PutUint16(b[12:], 0x8100) }), -1, -2, -2},
		{"ipv4 options cut", mutate(good[:14+20], func(b []byte) { b[14] = 0x46 }), 0x0800, -1, -2},
		{"ihl below 5", mutate(good, func(b []byte) { b[14] = 0x44 }), 0x0800, -1, -2},
		{"ihl beyond the frame", mutate(good[:14+20+20], func(b []byte) { b[14] = 0x4f }), 0x0800, -1, -2},
		{"total length below header", mutate(good, func(b []byte) { binary.BigEndian.PutUint16(b[16:], 10) }), 0x0800, -1, -2},
		{"version 6 in an ipv4 frame", mutate(good, func(b []byte) { b[14] = 0x65 }), 0x0800, -1, -2},
		{"tcp header cut", good[:14+20+10], 0x0800, 6, -1},
		{"tcp data offset below 5", mutate(good, func(b []byte) { b[14+20+12] = 0x40 }), 0x0800, 6, -1},
		{"tcp data offset beyond the frame", mutate(good, func(b []byte) { b[14+20+12] = 0xf0 }), 0x0800, 6, -1},
		{"udp header cut", good6[:14+40+7], 0x86dd, 17, -1},
		{"ipv6 extension cut", mutate(good6[:14+40+4], func(b []byte) { b[14+6] = 0 }), 0x86dd, -1, -2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := parse(t, coll, c.frame)
			if got.L3 != c.l3 || got.L4 != c.l4 || got.L4Status != c.status {
				t.Fatalf("got l3=%d l4=%d status=%d, want %d %d %d", got.L3, got.L4, got.L4Status, c.l3, c.l4, c.status)
			}
		})
	}
}

func TestIPv4Checksums(t *testing.T) {
	coll := loadParse(t)
	ip := bpftest.IPv4("10.0.0.1", "10.0.0.2", layers.IPProtocolUDP)
	ip.Options = []layers.IPv4Option{{OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}}}
	frame := bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), ip, bpftest.UDP(1, 2))
	r := parse(t, coll, frame)
	if r.IPCsum != r.IPCheck || r.IPCheck == 0 {
		t.Fatalf("ipv4_csum %#04x, header has %#04x", r.IPCsum, r.IPCheck)
	}

	verdict, out := bpftest.Run(t, coll.Programs["rewrite"], frame)
	if verdict != 0 {
		t.Fatalf("rewrite: %s", bpftest.Verdict(verdict))
	}
	pkt := bpftest.Decode(out)
	got := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !got.DstIP.Equal(net.ParseIP("10.99.0.1")) {
		t.Fatalf("daddr %s", got.DstIP)
	}
	want := got.Checksum
	// Recompute from scratch: gopacket serialises with a fresh checksum.
	fresh := bpftest.Decode(bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), &layers.IPv4{
		Version: 4, IHL: got.IHL, TTL: got.TTL, Protocol: got.Protocol, SrcIP: got.SrcIP, DstIP: got.DstIP, Options: got.Options,
	}, bpftest.UDP(1, 2))).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if fresh.Checksum != want {
		t.Fatalf("incremental checksum %#04x, from scratch %#04x", want, fresh.Checksum)
	}
}
