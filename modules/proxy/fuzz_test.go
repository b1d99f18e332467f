package main

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
)

// l4sums says, for an IPv4 or IPv6 frame carrying TCP or UDP (no IPv4
// options are needed, no fragments, no IPv6 extension headers), whether its
// IPv4 header checksum and its L4 checksum are right (UDP's 0 counts as
// right). ok is false for anything else.
func l4sums(b []byte) (ipOK, l4OK, ok bool) {
	if len(b) < 14 {
		return false, false, false
	}
	et := binary.BigEndian.Uint16(b[12:])
	var src, dst, seg []byte
	var proto uint8
	switch {
	case et == uint16(layers.EthernetTypeIPv4) && len(b) >= 34:
		ip := b[14:]
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if ip[0]>>4 != 4 || ihl < 20 || total < ihl || total > len(ip) || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			return false, false, false
		}
		ipOK = sum16(0, ip[:ihl]) == 0xffff
		src, dst, proto, seg = ip[12:16], ip[16:20], ip[9], ip[ihl:total]
	case et == uint16(layers.EthernetTypeIPv6) && len(b) >= 54:
		ip := b[14:]
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		if ip[0]>>4 != 6 || 40+plen > len(ip) {
			return false, false, false
		}
		ipOK = true
		src, dst, proto, seg = ip[8:24], ip[24:40], ip[6], ip[40:40+plen]
	default:
		return false, false, false
	}
	switch {
	case proto == uint8(layers.IPProtocolTCP) && len(seg) >= 20:
	case proto == uint8(layers.IPProtocolUDP) && len(seg) >= 8:
		if len(src) == 4 && binary.BigEndian.Uint16(seg[6:]) == 0 {
			return ipOK, true, true
		}
	default:
		return false, false, false
	}
	return ipOK, sum16(pseudo(src, dst, proto, len(seg)), seg) == 0xffff, true
}

// Random frames through the data plane (over the fixture's translations):
// no crash, and a packet it rewrites is a correct rewrite — redirected to
// an attached instance, with checksums as right as they were.
func FuzzProxyIngress(f *testing.F) {
	d := newDP(f)
	for _, fr := range [][]byte{
		tcpFrame(f, "10.18.0.2", "10.30.0.1", 40000, 8080),
		tcpFrame(f, "10.18.0.2", "10.30.0.11", 40001, 80),
		bpftest.Serialize(f, eth(), bpftest.IPv4("10.18.0.2", "10.30.0.1", layers.IPProtocolUDP), bpftest.UDP(5353, 53), bpftest.Payload([]byte("q"))),
		tcp6(f, "fd00:18::2", "fdff:2000::1", 40002, 8080),
		udp6(f, "fd00:18::2", "fdff:2000::b", 5353, 53),
	} {
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 4096 {
			return
		}
		in := append([]byte(nil), frame...)
		out := make([]byte, len(frame)+256)
		opts := &ebpf.RunOptions{Data: frame, DataOut: out}
		ret, err := d.coll.Programs[module.ProgramIngress].Run(opts)
		if err != nil {
			return // the kernel refuses to make an skb of it (an IP ethertype with no IP header)
		}
		out = opts.DataOut
		if int32(ret) != redirect || bytes.Equal(out, in) {
			return
		}
		if len(out) != len(in) {
			t.Fatalf("a rewrite changed the length: %d → %d", len(in), len(out))
		}
		ipIn, l4In, okIn := l4sums(in)
		ipOut, l4Out, okOut := l4sums(out)
		if okIn && (!okOut || (ipIn && !ipOut) || (l4In && !l4Out)) {
			t.Fatalf("a rewrite broke a checksum (ip %v→%v, l4 %v→%v):\nin  % x\nout % x", ipIn, ipOut, l4In, l4Out, in, out)
		}
		var dmac [6]byte
		copy(dmac[:], out[:6])
		for _, l := range attachedAll() {
			if l.mac == dmac {
				return
			}
		}
		t.Fatalf("redirected with destination MAC % x, no attached instance's", dmac)
	})
}
