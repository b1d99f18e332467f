package main

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/test/bpftest"
)

func eth6() *layers.Ethernet { return bpftest.Eth(layers.EthernetTypeIPv6) }

func tcp6(t testing.TB, src, dst string, sport, dport uint16) []byte {
	return bpftest.Serialize(t, eth6(), bpftest.IPv6(src, dst, layers.IPProtocolTCP), bpftest.TCP(sport, dport), bpftest.Payload([]byte("data")))
}

func udp6(t testing.TB, src, dst string, sport, dport uint16) []byte {
	return bpftest.Serialize(t, eth6(), bpftest.IPv6(src, dst, layers.IPProtocolUDP), bpftest.UDP(sport, dport), bpftest.Payload([]byte("x")))
}

func echo6(t testing.TB, src, dst string, typ uint8, id uint16) []byte {
	return bpftest.Serialize(t, eth6(), bpftest.IPv6(src, dst, layers.IPProtocolICMPv6),
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}, &layers.ICMPv6Echo{Identifier: id, SeqNumber: 1}, bpftest.Payload([]byte("ping")))
}

// check6 parses an output frame: addresses, MACs and the L4 checksum against
// one computed from scratch.
func check6(t *testing.T, out []byte, src, dst string, dmac byte) {
	t.Helper()
	pk := bpftest.Decode(out)
	checkMACs(t, pk, dmac)
	ip := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if ip.SrcIP.String() != src || ip.DstIP.String() != dst {
		t.Fatalf("addresses %s -> %s, want %s -> %s", ip.SrcIP, ip.DstIP, src, dst)
	}
	checkL4(t, pk, &layers.IPv6{Version: 6, HopLimit: ip.HopLimit, NextHeader: ip.NextHeader, SrcIP: ip.SrcIP, DstIP: ip.DstIP}, eth6())
}

func dst6(out []byte) string {
	return bpftest.Decode(out).Layer(layers.LayerTypeIPv6).(*layers.IPv6).DstIP.String()
}

func TestTranslate6RoundRobinAndBack(t *testing.T) {
	d := newDP(t)
	var got []string
	for i := 0; i < 4; i++ {
		v, out := d.run(t, tcp6(t, "fd00:18::2", "fdff:2000::1", uint16(40000+i), 80))
		if v != redirect {
			t.Fatalf("verdict %s, want REDIRECT", bpftest.Verdict(v))
		}
		got = append(got, dst6(out))
		check6(t, out, "fdff:2000::2", dst6(out), byte(2+i%3+1))
	}
	want := []string{"fd00:18::3", "fd00:18::4", "fd00:18::5", "fd00:18::3"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round robin %v, want %v", got, want)
	}
	// The session sticks, however often the flow's packets come.
	for i := 0; i < 3; i++ {
		_, out := d.run(t, tcp6(t, "fd00:18::2", "fdff:2000::1", 40001, 80))
		check6(t, out, "fdff:2000::2", "fd00:18::4", 4)
	}
	// The reply goes back as the service IP to the client.
	v, out := d.run(t, tcp6(t, "fd00:18::4", "fdff:2000::2", 80, 40001))
	if v != redirect {
		t.Fatalf("reply verdict %s", bpftest.Verdict(v))
	}
	check6(t, out, "fdff:2000::1", "fd00:18::2", bpftest.MACA[5])
	if h, n := d.stat(t, statHit), d.stat(t, statNew); h != 4 || n != 4 {
		t.Fatalf("hits %d, new sessions %d; want 4, 4", h, n)
	}
	var sessions int
	var k pxFlow6
	var s pxSession6
	for it := d.coll.Maps["sessions6"].Iterate(); it.Next(&k, &s); {
		sessions++
	}
	if sessions != 8 {
		t.Fatalf("%d IPv6 sessions, want 8 (both ways for 4 flows)", sessions)
	}
}

func TestInstanceIP6UDPAndEcho(t *testing.T) {
	d := newDP(t)
	if v, out := d.run(t, udp6(t, "fd00:18::2", "fdff:2000::c", 5000, 7000)); v != redirect {
		t.Fatalf("udp: %s", bpftest.Verdict(v))
	} else {
		check6(t, out, "fdff:2000::2", "fd00:18::5", 5)
	}
	if v, out := d.run(t, udp6(t, "fd00:18::5", "fdff:2000::2", 7000, 5000)); v != redirect {
		t.Fatalf("udp reply: %s", bpftest.Verdict(v))
	} else {
		check6(t, out, "fdff:2000::c", "fd00:18::2", bpftest.MACA[5])
	}
	if v, out := d.run(t, echo6(t, "fd00:18::2", "fdff:2000::b", 128, 77)); v != redirect {
		t.Fatalf("echo: %s", bpftest.Verdict(v))
	} else {
		check6(t, out, "fdff:2000::2", "fd00:18::4", 4)
	}
	if v, out := d.run(t, echo6(t, "fd00:18::4", "fdff:2000::2", 129, 77)); v != redirect {
		t.Fatalf("echo reply: %s", bpftest.Verdict(v))
	} else {
		check6(t, out, "fdff:2000::b", "fd00:18::2", bpftest.MACA[5])
	}
}

// withDestOpts inserts an empty destination-options header (8 bytes of PadN)
// between the IPv6 header and the L4 header.
func withDestOpts(f []byte) []byte {
	const l3 = 14
	out := append([]byte(nil), f[:l3+40]...)
	out = append(out, f[l3+6], 0, 1, 4, 0, 0, 0, 0)
	out = append(out, f[l3+40:]...)
	out[l3+6] = 60
	binary.BigEndian.PutUint16(out[l3+4:], binary.BigEndian.Uint16(f[l3+4:])+8)
	return out
}

// What the IPv6 path cannot translate it passes on untouched.
func TestPassesOnUntouched6(t *testing.T) {
	d := newDP(t)
	good := tcp6(t, "fd00:18::2", "fdff:2000::1", 1, 80)
	zeroUDP := udp6(t, "fd00:18::2", "fdff:2000::1", 1, 53)
	zeroUDP[14+40+6], zeroUDP[14+40+7] = 0, 0
	// (BPF_PROG_TEST_RUN refuses an IPv6 frame shorter than the fixed header.)
	notV6 := append([]byte(nil), good...)
	notV6[14] = 0x40
	cases := []struct {
		name string
		f    []byte
	}{
		{"not a service IP", tcp6(t, "fd00:18::2", "fd00:18::3", 1, 80)},
		{"service IP without instances", tcp6(t, "fd00:18::2", "fdff:2000::99", 1, 80)},
		{"unknown sender", tcp6(t, "fd00:18::77", "fdff:2000::1", 1, 80)},
		{"truncated TCP", good[:14+40+10]},
		{"version 4 in the IPv6 header", notV6},
		{"extension header", withDestOpts(good)},
		{"extension header, truncated", withDestOpts(good)[:14+40+4]},
		{"UDP without checksum", zeroUDP},
		{"ICMPv6 error without a quote", bpftest.Serialize(t, eth6(), bpftest.IPv6("fd00:18::2", "fdff:2000::1", layers.IPProtocolICMPv6),
			&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(1, 4)}, bpftest.Payload(make([]byte, 8)))},
		{"ICMPv4 inside IPv6", bpftest.Serialize(t, eth6(), bpftest.IPv6("fd00:18::2", "fdff:2000::1", layers.IPProtocolICMPv4),
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)})},
	}
	for _, c := range cases {
		v, out := d.run(t, c.f)
		if v != next || string(out) != string(c.f) {
			t.Errorf("%s: %s, changed=%v", c.name, bpftest.Verdict(v), string(out) != string(c.f))
		}
	}
	for _, s := range []struct {
		idx  uint32
		want uint64
	}{{statMalformed, 3}, {statV6Ext, 1}, {statPass, 3}, {statHit, 0}, {statNew, 0}} {
		if n := d.stat(t, s.idx); n != s.want {
			t.Errorf("%s = %d, want %d", statNames[s.idx], n, s.want)
		}
	}
	var k pxFlow6
	var sess pxSession6
	if d.coll.Maps["sessions6"].Iterate().Next(&k, &sess) {
		t.Fatal("a passed packet made a session")
	}
}

// rewriteDiff is the checksum change of rewriting addresses old to new, as
// the data plane sums it: 32-bit words in memory order, one's complement.
func rewriteDiff(old, new [][]byte) uint32 {
	var sum uint64
	for i, set := range [][][]byte{old, new} {
		for _, a := range set {
			for j := 0; j < len(a); j += 4 {
				w := binary.LittleEndian.Uint32(a[j:])
				if i == 0 {
					w = ^w
				}
				sum += uint64(w)
			}
		}
	}
	for sum>>32 != 0 {
		sum = sum&0xffffffff + sum>>32
	}
	return uint32(sum)
}

// Sessions hold the precomputed checksum difference of their rewrite, both
// ways and in both families.
func TestSessionChecksumDiff(t *testing.T) {
	d := newDP(t)
	d.run(t, tcp6(t, "fd00:18::2", "fdff:2000::a", 1000, 80))
	d.run(t, tcpFrame(t, "10.18.0.2", "10.30.0.1", 1000, 80))
	var k6 pxFlow6
	var s6 pxSession6
	n := 0
	for it := d.coll.Maps["sessions6"].Iterate(); it.Next(&k6, &s6); n++ {
		if want := rewriteDiff([][]byte{k6.Src[:], k6.Dst[:]}, [][]byte{s6.NewSrc[:], s6.NewDst[:]}); fold(want) != fold(s6.CsumDiff) {
			t.Errorf("session %v: diff %#x, want %#x", fmt.Sprint(k6.Src, k6.Dst), s6.CsumDiff, want)
		}
	}
	var k pxFlow
	var s pxSession
	for it := d.coll.Maps["sessions"].Iterate(); it.Next(&k, &s); n++ {
		if want := rewriteDiff([][]byte{k.Src[:], k.Dst[:]}, [][]byte{s.NewSrc[:], s.NewDst[:]}); fold(want) != fold(s.CsumDiff) {
			t.Errorf("session %v: diff %#x, want %#x", fmt.Sprint(k.Src, k.Dst), s.CsumDiff, want)
		}
	}
	if n != 4 {
		t.Fatalf("%d sessions, want 4", n)
	}
}

func fold(x uint32) uint16 {
	for x>>16 != 0 {
		x = x&0xffff + x>>16
	}
	return uint16(x)
}

var _ = gopacket.Payload(nil)
