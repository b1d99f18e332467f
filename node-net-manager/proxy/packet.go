package proxy

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// IP protocol numbers the proxy translates.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// ICMP echo types per family.
const (
	icmpEchoReply     = 0
	icmpEcho          = 8
	icmpv6EchoRequest = 128
	icmpv6EchoReply   = 129
)

var errNotTranslatable = errors.New("not a translatable packet")

// pkt is a parsed IPv4 or IPv6 packet: header offsets and the flow fields.
type pkt struct {
	b        []byte
	v6       bool
	l3len    int // IP header length in bytes
	proto    uint8
	src, dst netip.Addr
	sport    uint16 // ICMP echo: the identifier
	dport    uint16
	csumOff  int // offset of the L4 checksum, -1 for none the addresses affect
	srcOff   int // offsets of the addresses
	dstOff   int
	quoted   bool // inside an ICMP error: the payload may be cut short
}

// parse reads an IPv4 or IPv6 packet carrying TCP, UDP or an ICMP echo.
// IPv6 packets with extension headers are not translated.
func parse(b []byte) (pkt, error) {
	if len(b) > 0 && b[0]>>4 == 6 {
		return parse6(b)
	}
	return parse4(b)
}

func parse4(b []byte) (pkt, error) { return parse4q(b, false) }

// parse4q parses an IPv4 packet; a quoted one (inside an ICMP error) may be
// cut short after its first 8 bytes of payload.
func parse4q(b []byte, quoted bool) (pkt, error) {
	p := pkt{b: b, csumOff: -1, srcOff: 12, dstOff: 16, quoted: quoted}
	if len(b) < 20 || b[0]>>4 != 4 {
		return p, errNotTranslatable
	}
	p.l3len = int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if quoted {
		total = min(total, len(b))
	}
	if p.l3len < 20 || total < p.l3len || total > len(b) {
		return p, errNotTranslatable
	}
	if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
		return p, errNotTranslatable // a later fragment: no ports to key a flow on
	}
	p.proto = b[9]
	p.src = netip.AddrFrom4([4]byte(b[12:16]))
	p.dst = netip.AddrFrom4([4]byte(b[16:20]))
	return p, p.parseL4(b[p.l3len:total])
}

func parse6(b []byte) (pkt, error) { return parse6q(b, false) }

func parse6q(b []byte, quoted bool) (pkt, error) {
	p := pkt{b: b, v6: true, l3len: 40, csumOff: -1, srcOff: 8, dstOff: 24, quoted: quoted}
	if len(b) < 40 {
		return p, errNotTranslatable
	}
	total := 40 + int(binary.BigEndian.Uint16(b[4:6]))
	if quoted {
		total = min(total, len(b))
	}
	if total > len(b) {
		return p, errNotTranslatable
	}
	p.proto = b[6]
	p.src = netip.AddrFrom16([16]byte(b[8:24]))
	p.dst = netip.AddrFrom16([16]byte(b[24:40]))
	return p, p.parseL4(b[40:total])
}

// parseL4 reads the ports (or echo identifier) and where the L4 checksum is.
// A quoted packet needs only its first 8 bytes of payload; its L4 checksum is
// fixed when it was quoted.
func (p *pkt) parseL4(l4 []byte) error {
	need := func(n int) bool { return len(l4) >= n || (p.quoted && len(l4) >= 8) }
	switch {
	case p.proto == protoTCP && need(20):
		if len(l4) >= 18 {
			p.csumOff = p.l3len + 16
		}
	case p.proto == protoUDP && len(l4) >= 8:
		p.csumOff = p.l3len + 6
	case p.proto == protoICMP && !p.v6 && len(l4) >= 8 && (l4[0] == icmpEcho || l4[0] == icmpEchoReply),
		p.proto == protoICMPv6 && p.v6 && len(l4) >= 8 && (l4[0] == icmpv6EchoRequest || l4[0] == icmpv6EchoReply):
		if p.v6 {
			p.csumOff = p.l3len + 2 // ICMPv6 covers the pseudo-header
		}
		id := binary.BigEndian.Uint16(l4[4:6])
		p.sport, p.dport = id, id
		return nil
	default:
		return errNotTranslatable
	}
	p.sport = binary.BigEndian.Uint16(l4[0:2])
	p.dport = binary.BigEndian.Uint16(l4[2:4])
	return nil
}

// rewrite sets the addresses, fixing the IPv4 header checksum and the L4
// checksum over the pseudo-header incrementally (RFC 1624).
func (p *pkt) rewrite(src, dst netip.Addr) {
	for _, c := range []struct {
		off      int
		from, to netip.Addr
	}{{p.srcOff, p.src, src}, {p.dstOff, p.dst, dst}} {
		if c.from == c.to {
			continue
		}
		old, neu := c.from.AsSlice(), c.to.AsSlice()
		copy(p.b[c.off:c.off+len(neu)], neu)
		if !p.v6 {
			fix(p.b[10:12], old, neu)
		}
		if p.csumOff >= 0 {
			sum := p.b[p.csumOff : p.csumOff+2]
			if p.proto == protoUDP && !p.v6 && sum[0] == 0 && sum[1] == 0 {
				continue // IPv4 UDP without a checksum stays without
			}
			fix(sum, old, neu)
		}
	}
	p.src, p.dst = src, dst
}

// fix updates the checksum at sum for a field of even length changing from
// old to neu.
func fix(sum []byte, old, neu []byte) {
	c := uint32(^binary.BigEndian.Uint16(sum))
	for i := 0; i+1 < len(old); i += 2 {
		c += uint32(^binary.BigEndian.Uint16(old[i:i+2])) & 0xffff
		c += uint32(binary.BigEndian.Uint16(neu[i : i+2]))
	}
	for c>>16 != 0 {
		c = (c & 0xffff) + c>>16
	}
	binary.BigEndian.PutUint16(sum, ^uint16(c))
}
