package proxy

import "encoding/binary"

// icmpError is an ICMP or ICMPv6 error message about a packet of a flow
// (destination or port unreachable, packet too big, time exceeded, parameter
// problem): the outer packet and the packet it quotes.
type icmpError struct {
	outer pkt // its csumOff is -1: the ICMP checksum is recomputed whole
	inner pkt // the quoted packet, a slice of the outer one's bytes
	msg   int // offset of the ICMP message in the outer packet
}

// parseICMPError reads an ICMP error about a TCP, UDP or echo flow.
func parseICMPError(b []byte) (icmpError, bool) {
	var e icmpError
	var err error
	switch {
	case len(b) >= 20 && b[0]>>4 == 4:
		if e.outer, err = parse4q(b, true); err != nil && e.outer.proto == protoICMP {
			e.msg = e.outer.l3len
			if len(b) < e.msg+8 || !isError4(b[e.msg]) {
				return e, false
			}
			e.inner, err = parse4q(b[e.msg+8:], true)
			return e, err == nil
		}
	case len(b) >= 40 && b[0]>>4 == 6:
		if e.outer, err = parse6q(b, true); err != nil && e.outer.proto == protoICMPv6 {
			e.msg = 40
			if len(b) < e.msg+8 || b[e.msg] >= 128 {
				return e, false // informational, not an error
			}
			e.inner, err = parse6q(b[e.msg+8:], true)
			return e, err == nil && e.inner.v6
		}
	}
	return e, false
}

func isError4(typ uint8) bool { return typ == 3 || typ == 11 || typ == 12 }

// flowKey is the key of the direction the error travels in: the reverse of
// the quoted packet's flow.
func (e *icmpError) flowKey() flowKey {
	return flowKey{e.inner.proto, e.inner.dst, e.inner.dport, e.inner.src, e.inner.sport}
}

// apply translates the error by the session of the direction it travels in:
// the quoted packet as its sender knew it, the outer destination to that
// sender and the outer source, when it is the quoted packet's destination, as
// that too. The ICMP checksum is recomputed over the whole message.
func (e *icmpError) apply(s *session) {
	outerSrc := e.outer.src
	if outerSrc == e.inner.dst {
		outerSrc = s.newSrc
	}
	e.inner.rewrite(s.newDst, s.newSrc)
	e.outer.csumOff = -1
	e.outer.rewrite(outerSrc, s.newDst)
	b := e.outer.b
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if e.outer.v6 {
		total = 40 + int(binary.BigEndian.Uint16(b[4:6]))
	}
	msg := b[e.msg:min(total, len(b))]
	msg[2], msg[3] = 0, 0
	if e.outer.v6 {
		binary.BigEndian.PutUint16(msg[2:4], checksum6(b[8:24], b[24:40], protoICMPv6, msg))
	} else {
		binary.BigEndian.PutUint16(msg[2:4], checksum(msg))
	}
}
