package main

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/test/bpftest"
)

// ICMP errors about translated flows, in the fixture's addresses: the client
// 10.18.0.2 / fd00:18::2 (instance IP 10.30.0.2 / fdff:2000::2) talks to web
// instances 10.18.0.3-5 / fd00:18::3-5. None of these rewrites merely permutes
// the 16-bit words of the addresses (e.g. {10.30.0.2, 10.18.0.5} ->
// {10.18.0.2, 10.30.0.12}), so each checksum update changes its field: a
// missing one fails the checks below (TestICMPErrorFixturesChangeSums).

// icmp4Err is an ICMP error from src to dst quoting quote; rest is the
// header's second word (e.g. the next-hop MTU of "fragmentation needed").
func icmp4Err(t testing.TB, src, dst string, typ, code uint8, rest uint16, quote []byte) []byte {
	return bpftest.Serialize(t, eth(), bpftest.IPv4(src, dst, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Seq: rest}, bpftest.Payload(quote))
}

// icmp6Err is an ICMPv6 error from src to dst quoting quote; rest is the
// header's second word (the MTU of "packet too big").
func icmp6Err(t testing.TB, src, dst string, typ, code uint8, rest uint32, quote []byte) []byte {
	body := binary.BigEndian.AppendUint32(nil, rest)
	return bpftest.Serialize(t, eth6(), bpftest.IPv6(src, dst, layers.IPProtocolICMPv6),
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}, bpftest.Payload(append(body, quote...)))
}

// l3 is the IP packet of a frame, without Ethernet header or padding.
func l3(f []byte) []byte {
	p := f[14:]
	if p[0]>>4 == 4 {
		return p[:binary.BigEndian.Uint16(p[2:])]
	}
	return p[:40+int(binary.BigEndian.Uint16(p[4:]))]
}

// send runs a client's packet through the data plane, which must translate
// it (making the flow's sessions), and returns the packet as it arrives.
func send(t *testing.T, d *dp, f []byte) []byte {
	t.Helper()
	v, out := d.run(t, f)
	if v != redirect {
		t.Fatalf("the flow's packet: %s", bpftest.Verdict(v))
	}
	return l3(out)
}

// checkErr checks a translated error: redirected, MACs, outer addresses, the
// outer IPv4 header checksum, the ICMP (ICMPv4: over the message; ICMPv6:
// with the pseudo-header) checksum verified from scratch, and the quote.
func checkErr(t *testing.T, d *dp, in []byte, src, dst string, dmac byte, quote []byte) {
	t.Helper()
	v, out := d.run(t, in)
	if v != redirect {
		t.Fatalf("verdict %s, want REDIRECT", bpftest.Verdict(v))
	}
	checkMACs(t, bpftest.Decode(out), dmac)
	ip := l3(out)
	var s, dd netip.Addr
	var msg []byte
	var sum uint32
	if ip[0]>>4 == 4 {
		hl := int(ip[0]&15) * 4
		s, dd = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		if sum16(0, ip[:hl]) != 0xffff {
			t.Error("outer IPv4 header checksum is wrong")
		}
		msg = ip[hl:]
		sum = sum16(0, msg)
	} else {
		s, dd = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		msg = ip[40:]
		sum = sum16(pseudo(ip[8:24], ip[24:40], 58, len(msg)), msg)
	}
	if s.String() != src || dd.String() != dst {
		t.Errorf("outer addresses %s -> %s, want %s -> %s", s, dd, src, dst)
	}
	if sum != 0xffff {
		t.Errorf("ICMP checksum does not verify (sum %#04x)", sum)
	}
	if !bytes.Equal(msg[8:], quote) {
		t.Errorf("quoted packet\n%x\nwant\n%x", msg[8:], quote)
	}
}

// IPv4 port unreachable for a UDP flow, the whole packet quoted: the client
// gets it from the instance IP it used, quoting what it sent, byte for byte.
func TestICMPErrorPortUnreachable(t *testing.T) {
	d := newDP(t)
	sent := bpftest.Serialize(t, eth(), bpftest.IPv4("10.18.0.2", "10.30.0.12", layers.IPProtocolUDP), bpftest.UDP(5000, 7000), bpftest.Payload([]byte("anyone?")))
	arrived := send(t, d, sent) // 10.30.0.2 -> 10.18.0.5
	checkErr(t, d, icmp4Err(t, "10.18.0.5", "10.30.0.2", 3, 3, 0, arrived), "10.30.0.12", "10.18.0.2", bpftest.MACA[5], l3(sent))
	if n := d.stat(t, statICMPError); n != 1 {
		t.Fatalf("icmpErrors %d, want 1", n)
	}
	// The other way round: the client's port unreachable about the instance's
	// reply reaches the instance as about the reply it sent.
	reply := bpftest.Serialize(t, eth(), bpftest.IPv4("10.18.0.5", "10.30.0.2", layers.IPProtocolUDP), bpftest.UDP(7000, 5000), bpftest.Payload([]byte("me")))
	got := send(t, d, reply) // 10.30.0.12 -> 10.18.0.2
	checkErr(t, d, icmp4Err(t, "10.18.0.2", "10.30.0.12", 3, 3, 0, got), "10.30.0.2", "10.18.0.5", 5, l3(reply))
	// A datagram without a checksum (0, IPv4) is quoted without one.
	sent = bpftest.Serialize(t, eth(), bpftest.IPv4("10.18.0.2", "10.30.0.12", layers.IPProtocolUDP), bpftest.UDP(5001, 7000), bpftest.Payload([]byte("none")))
	sent[14+20+6], sent[14+20+7] = 0, 0
	arrived = send(t, d, sent)
	checkErr(t, d, icmp4Err(t, "10.18.0.5", "10.30.0.2", 3, 3, 0, arrived), "10.30.0.12", "10.18.0.2", bpftest.MACA[5], l3(sent))
	for _, c := range []struct {
		idx  uint32
		want uint64
	}{{statICMPError, 3}, {statICMPErrorNoFlow, 0}, {statPass, 0}, {statMalformed, 0}, {statError, 0}} {
		if n := d.stat(t, c.idx); n != c.want {
			t.Errorf("%s = %d, want %d", statNames[c.idx], n, c.want)
		}
	}
}

// IPv4 "fragmentation needed" quoting only the IP header and 8 bytes of a TCP
// segment (its checksum is not quoted), from the instance and from a router.
func TestICMPErrorFragmentationNeeded(t *testing.T) {
	d := newDP(t)
	sent := tcpFrame(t, "10.18.0.2", "10.30.0.1", 40000, 80)
	arrived := send(t, d, sent) // 10.30.0.2 -> 10.18.0.3
	checkErr(t, d, icmp4Err(t, "10.18.0.3", "10.30.0.2", 3, 4, 1400, arrived[:28]), "10.30.0.1", "10.18.0.2", bpftest.MACA[5], l3(sent)[:28])
	// A router's error keeps its source.
	checkErr(t, d, icmp4Err(t, "192.0.2.7", "10.30.0.2", 11, 0, 0, arrived[:28]), "192.0.2.7", "10.18.0.2", bpftest.MACA[5], l3(sent)[:28])
	// ... also when it quotes the whole segment: the TCP checksum is restored.
	checkErr(t, d, icmp4Err(t, "192.0.2.7", "10.30.0.2", 3, 4, 1400, arrived), "192.0.2.7", "10.18.0.2", bpftest.MACA[5], l3(sent))
	// An echo's error, keyed on the identifier.
	ping := bpftest.Serialize(t, eth(), bpftest.IPv4("10.18.0.2", "10.30.0.11", layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 5, Seq: 1}, bpftest.Payload([]byte("ping")))
	arrived = send(t, d, ping) // 10.30.0.2 -> 10.18.0.4
	checkErr(t, d, icmp4Err(t, "10.18.0.4", "10.30.0.2", 12, 0, 0x1400, arrived), "10.30.0.11", "10.18.0.2", bpftest.MACA[5], l3(ping))
	if n := d.stat(t, statICMPError); n != 4 {
		t.Fatalf("icmpErrors %d, want 4", n)
	}
}

// ICMPv6 packet too big for a TCP flow, the segment quoted whole (the
// ICMPv6 checksum covers the outer addresses), and errors quoting 8 bytes of
// TCP, a UDP datagram and an echo.
func TestICMPv6Error(t *testing.T) {
	d := newDP(t)
	sent := tcp6(t, "fd00:18::2", "fdff:2000::1", 40000, 80)
	arrived := send(t, d, sent) // fdff:2000::2 -> fd00:18::3
	checkErr(t, d, icmp6Err(t, "fd00:18::3", "fdff:2000::2", 2, 0, 1280, arrived), "fdff:2000::1", "fd00:18::2", bpftest.MACA[5], l3(sent))
	checkErr(t, d, icmp6Err(t, "fd00:18::3", "fdff:2000::2", 1, 4, 0, arrived[:48]), "fdff:2000::1", "fd00:18::2", bpftest.MACA[5], l3(sent)[:48])
	checkErr(t, d, icmp6Err(t, "2001:db8::1", "fdff:2000::2", 3, 0, 0, arrived[:48]), "2001:db8::1", "fd00:18::2", bpftest.MACA[5], l3(sent)[:48])

	sent = udp6(t, "fd00:18::2", "fdff:2000::c", 5000, 53)
	arrived = send(t, d, sent) // fdff:2000::2 -> fd00:18::5
	checkErr(t, d, icmp6Err(t, "fd00:18::5", "fdff:2000::2", 1, 4, 0, arrived), "fdff:2000::c", "fd00:18::2", bpftest.MACA[5], l3(sent))
	sent = echo6(t, "fd00:18::2", "fdff:2000::b", 128, 77)
	arrived = send(t, d, sent) // fdff:2000::2 -> fd00:18::4
	checkErr(t, d, icmp6Err(t, "fd00:18::4", "fdff:2000::2", 4, 0, 6, arrived), "fdff:2000::b", "fd00:18::2", bpftest.MACA[5], l3(sent))
	if n := d.stat(t, statICMPError); n != 5 {
		t.Fatalf("icmpErrors %d, want 5", n)
	}
}

// Errors about no known flow, malformed or truncated ones, and ICMP that is
// neither echo nor error are passed on untouched.
func TestICMPErrorPassesOnUntouched(t *testing.T) {
	d := newDP(t)
	arrived := send(t, d, bpftest.Serialize(t, eth(), bpftest.IPv4("10.18.0.2", "10.30.0.12", layers.IPProtocolUDP), bpftest.UDP(5000, 7000), bpftest.Payload([]byte("x"))))
	arrived6 := send(t, d, tcp6(t, "fd00:18::2", "fdff:2000::1", 40000, 80))
	good := icmp4Err(t, "10.18.0.5", "10.30.0.2", 3, 3, 0, arrived)
	good6 := icmp6Err(t, "fd00:18::3", "fdff:2000::2", 2, 0, 1280, arrived6)

	otherPort := append([]byte(nil), arrived...)
	otherPort[20+1]++ // another source port: no session
	otherPort6 := append([]byte(nil), arrived6...)
	otherPort6[40+3]++
	badIHL := append([]byte(nil), arrived...)
	badIHL[0] = 0x4f                       // 60 bytes of header, 28 quoted
	longer := append([]byte(nil), good...) // the IP total length claims more than there is
	binary.BigEndian.PutUint16(longer[16:], uint16(len(longer)-14+1))
	longer6 := append([]byte(nil), good6...)
	binary.BigEndian.PutUint16(longer6[18:], uint16(len(longer6)-54+1))

	for _, c := range []struct {
		name string
		f    []byte
		stat uint32
	}{
		{"no session", icmp4Err(t, "10.18.0.5", "10.30.0.2", 3, 3, 0, otherPort), statICMPErrorNoFlow},
		{"no session, IPv6", icmp6Err(t, "fd00:18::3", "fdff:2000::2", 2, 0, 1280, otherPort6), statICMPErrorNoFlow},
		{"quote shorter than IP header + 8", icmp4Err(t, "10.18.0.5", "10.30.0.2", 3, 3, 0, arrived[:27]), statMalformed},
		{"no quote", icmp4Err(t, "10.18.0.5", "10.30.0.2", 3, 3, 0, nil), statMalformed},
		{"quoted IHL past the quote", icmp4Err(t, "10.18.0.5", "10.30.0.2", 3, 3, 0, badIHL[:28]), statMalformed},
		{"frame shorter than the IP total length", longer, statMalformed},
		{"IPv6 quote shorter than IPv6 header + 8", icmp6Err(t, "fd00:18::3", "fdff:2000::2", 2, 0, 1280, arrived6[:47]), statMalformed},
		{"IPv6 frame shorter than the payload length", longer6, statMalformed},
		{"ICMP timestamp", icmp4Err(t, "10.18.0.5", "10.30.0.2", 13, 0, 0, make([]byte, 12)), statPass},
		{"ICMPv6 router solicitation", icmp6Err(t, "fd00:18::3", "fdff:2000::2", 133, 0, 0, nil), statPass},
	} {
		before := d.stat(t, c.stat)
		v, out := d.run(t, c.f)
		if v != next || !bytes.Equal(out, c.f) {
			t.Errorf("%s: %s, changed=%v", c.name, bpftest.Verdict(v), !bytes.Equal(out, c.f))
		}
		if d.stat(t, c.stat) != before+1 {
			t.Errorf("%s: not counted as %s", c.name, statNames[c.stat])
		}
	}
	if n := d.stat(t, statICMPError); n != 0 {
		t.Fatalf("icmpErrors %d, want 0", n)
	}
}

// The fixtures' rewrites change each checksum they touch: the one's-complement
// sum of the addresses differs before and after, for the outer and the quoted
// addresses alike (a rewrite that only permutes 16-bit words would not, and a
// skipped checksum update would go unnoticed).
func TestICMPErrorFixturesChangeSums(t *testing.T) {
	for _, c := range [][4]string{
		{"10.18.0.5", "10.30.0.2", "10.30.0.12", "10.18.0.2"}, // port unreachable, outer
		{"10.30.0.2", "10.18.0.5", "10.18.0.2", "10.30.0.12"}, // its quote
		{"10.18.0.2", "10.30.0.12", "10.30.0.2", "10.18.0.5"}, // the other way round
		{"10.18.0.3", "10.30.0.2", "10.30.0.1", "10.18.0.2"},  // fragmentation needed
		{"192.0.2.7", "10.30.0.2", "192.0.2.7", "10.18.0.2"},  // from a router
		{"10.18.0.4", "10.30.0.2", "10.30.0.11", "10.18.0.2"}, // echo
		{"fd00:18::3", "fdff:2000::2", "fdff:2000::1", "fd00:18::2"},
		{"2001:db8::1", "fdff:2000::2", "2001:db8::1", "fd00:18::2"},
		{"fd00:18::5", "fdff:2000::2", "fdff:2000::c", "fd00:18::2"},
		{"fd00:18::4", "fdff:2000::2", "fdff:2000::b", "fd00:18::2"},
	} {
		var a [4][]byte
		for i, s := range c {
			a[i] = netip.MustParseAddr(s).AsSlice()
		}
		if sum16(sum16(0, a[0]), a[1]) == sum16(sum16(0, a[2]), a[3]) {
			t.Errorf("%v: the rewrite leaves the sum alone", c)
		}
	}
}
