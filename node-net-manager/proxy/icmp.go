package proxy

import (
	"encoding/binary"
)

// Unreachable builds the ICMP "host unreachable" answer to an IPv4 packet (for
// IPv6: ICMPv6 "address unreachable")
// that nothing can serve (a service IP without instances): from the address
// the packet was sent to, back to its sender, quoting its header and first 8
// bytes of payload as RFC 792 asks. The sender's connect fails at once
// instead of timing out. It returns nil for packets that must not be answered
// (ICMP errors themselves, non-first fragments, malformed packets).
func Unreachable(orig []byte) []byte {
	if len(orig) >= 40 && orig[0]>>4 == 6 {
		return unreachable6(orig)
	}
	if len(orig) < 20 || orig[0]>>4 != 4 {
		return nil
	}
	ihl := int(orig[0]&0x0f) * 4
	if ihl < 20 || len(orig) < ihl || binary.BigEndian.Uint16(orig[6:8])&0x1fff != 0 {
		return nil
	}
	if orig[9] == protoICMP && (len(orig) < ihl+1 || (orig[ihl] != 8 && orig[ihl] != 0)) {
		return nil // never answer an ICMP error with one
	}
	quote := orig[:min(len(orig), ihl+8)]
	out := make([]byte, 20+8+len(quote))
	out[0] = 0x45
	binary.BigEndian.PutUint16(out[2:4], uint16(len(out)))
	out[8] = 64 // TTL
	out[9] = protoICMP
	copy(out[12:16], orig[16:20]) // from the unreachable service IP
	copy(out[16:20], orig[12:16]) // to the sender
	binary.BigEndian.PutUint16(out[10:12], checksum(out[:20]))
	icmp := out[20:]
	icmp[0], icmp[1] = 3, 1 // destination unreachable, host unreachable
	copy(icmp[8:], quote)
	binary.BigEndian.PutUint16(icmp[2:4], checksum(icmp))
	return out
}

// unreachable6 is Unreachable for IPv6: ICMPv6 destination unreachable,
// address unreachable (RFC 4443), quoting as much of the packet as fits in
// the minimum MTU.
func unreachable6(orig []byte) []byte {
	if orig[6] == protoICMPv6 && (len(orig) < 41 || orig[40] < 128) {
		return nil // never answer an ICMPv6 error with one
	}
	quote := orig[:min(len(orig), 1280-40-8)]
	out := make([]byte, 40+8+len(quote))
	out[0] = 0x60
	binary.BigEndian.PutUint16(out[4:6], uint16(8+len(quote)))
	out[6] = protoICMPv6
	out[7] = 64                  // hop limit
	copy(out[8:24], orig[24:40]) // from the unreachable service IP
	copy(out[24:40], orig[8:24]) // to the sender
	icmp := out[40:]
	icmp[0], icmp[1] = 1, 3 // destination unreachable, address unreachable
	copy(icmp[8:], quote)
	binary.BigEndian.PutUint16(icmp[2:4], checksum6(out[8:24], out[24:40], protoICMPv6, icmp))
	return out
}

// checksum6 is the checksum of an upper-layer message over IPv6: over the
// pseudo-header (RFC 8200 §8.1) and the message.
func checksum6(src, dst []byte, proto uint8, msg []byte) uint16 {
	pseudo := make([]byte, 0, 40+len(msg))
	pseudo = append(pseudo, src...)
	pseudo = append(pseudo, dst...)
	pseudo = binary.BigEndian.AppendUint32(pseudo, uint32(len(msg)))
	pseudo = append(pseudo, 0, 0, 0, proto)
	return checksum(append(pseudo, msg...))
}

// checksum is the Internet checksum of b (RFC 1071).
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
