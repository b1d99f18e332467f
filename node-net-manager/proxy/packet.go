package proxy

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// IP protocol numbers the proxy translates.
const (
	protoICMP = 1
	protoTCP  = 6
	protoUDP  = 17
)

var errNotTranslatable = errors.New("not a translatable packet")

// pkt is a parsed IPv4 packet: header offsets and the flow fields.
type pkt struct {
	b        []byte
	ihl      int // header length in bytes
	proto    uint8
	src, dst netip.Addr
	sport    uint16 // ICMP echo: the identifier
	dport    uint16
	csumOff  int // offset of the L4 checksum, -1 for none the addresses affect
	echoType uint8
}

// parse reads an IPv4 packet carrying TCP, UDP or an ICMP echo.
func parse(b []byte) (pkt, error) {
	p := pkt{b: b, csumOff: -1}
	if len(b) < 20 || b[0]>>4 != 4 {
		return p, errNotTranslatable
	}
	p.ihl = int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if p.ihl < 20 || total < p.ihl || total > len(b) {
		return p, errNotTranslatable
	}
	if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
		return p, errNotTranslatable // a later fragment: no ports to key a flow on
	}
	p.proto = b[9]
	p.src = netip.AddrFrom4([4]byte(b[12:16]))
	p.dst = netip.AddrFrom4([4]byte(b[16:20]))
	l4 := b[p.ihl:total]
	switch p.proto {
	case protoTCP:
		if len(l4) < 20 {
			return p, errNotTranslatable
		}
		p.csumOff = p.ihl + 16
	case protoUDP:
		if len(l4) < 8 {
			return p, errNotTranslatable
		}
		p.csumOff = p.ihl + 6
	case protoICMP:
		if len(l4) < 8 || (l4[0] != 8 && l4[0] != 0) {
			return p, errNotTranslatable
		}
		p.echoType = l4[0]
		id := binary.BigEndian.Uint16(l4[4:6])
		p.sport, p.dport = id, id
		return p, nil
	default:
		return p, errNotTranslatable
	}
	p.sport = binary.BigEndian.Uint16(l4[0:2])
	p.dport = binary.BigEndian.Uint16(l4[2:4])
	return p, nil
}

// rewrite sets the addresses, fixing the IPv4 header checksum and the L4
// checksum over the pseudo-header incrementally (RFC 1624).
func (p *pkt) rewrite(src, dst netip.Addr) {
	for _, c := range []struct {
		off      int
		from, to netip.Addr
	}{{12, p.src, src}, {16, p.dst, dst}} {
		if c.from == c.to {
			continue
		}
		old, neu := c.from.As4(), c.to.As4()
		copy(p.b[c.off:c.off+4], neu[:])
		fix(p.b[10:12], old, neu)
		if p.csumOff >= 0 {
			sum := p.b[p.csumOff : p.csumOff+2]
			if p.proto == protoUDP && sum[0] == 0 && sum[1] == 0 {
				continue // UDP without a checksum stays without
			}
			fix(sum, old, neu)
		}
	}
	p.src, p.dst = src, dst
}

// fix updates the checksum at sum for a 4-byte field changing from old to neu.
func fix(sum []byte, old, neu [4]byte) {
	c := uint32(^binary.BigEndian.Uint16(sum))
	for i := 0; i < 4; i += 2 {
		c += uint32(^binary.BigEndian.Uint16(old[i:i+2])) & 0xffff
		c += uint32(binary.BigEndian.Uint16(neu[i : i+2]))
	}
	for c>>16 != 0 {
		c = (c & 0xffff) + c>>16
	}
	binary.BigEndian.PutUint16(sum, ^uint16(c))
}
