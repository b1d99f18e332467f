package main

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"

	pb "github.com/oakestra/netmanager/modules/sdwan/sdwanpb"
)

// The gRPC API's rules are lists of information elements; these functions
// turn them into the config's Rule and LBRConfig and back. They are pure.

// ieSize is the value length each IE type must have (0: variable, checked
// by the decoder).
var ieSize = map[pb.IEType]int{
	pb.IEType_RULE_ID: 4, pb.IEType_PRECEDENCE: 4, pb.IEType_SRC_IP: 0, pb.IEType_DST_IP: 0,
	pb.IEType_PROTOCOL: 1, pb.IEType_TOS: 1, pb.IEType_SRC_PORTS: 4, pb.IEType_DST_PORTS: 4,
	pb.IEType_ACTION: 1, pb.IEType_INTERFACE: 4, pb.IEType_WEIGHT: 4, pb.IEType_DEFAULT_CLASS: 1,
}

const ifaceLBR = 0xffffffff

// checkIE validates an IE's type and length.
func checkIE(i int, ie *pb.IE) error {
	want, ok := ieSize[ie.GetType()]
	if !ok || ie.GetType() == pb.IEType_IE_UNSPECIFIED {
		return fmt.Errorf("ies[%d]: unknown IE type %d", i, ie.GetType())
	}
	n := len(ie.GetValue())
	if int(ie.GetLength()) != n {
		return fmt.Errorf("ies[%d] (%s): length %d but the value has %d bytes", i, ie.GetType(), ie.GetLength(), n)
	}
	if want == 0 && n != 5 && n != 17 {
		return fmt.Errorf("ies[%d] (%s): length %d must be 5 (IPv4 + prefix length) or 17 (IPv6 + prefix length)", i, ie.GetType(), n)
	}
	if want != 0 && n != want {
		return fmt.Errorf("ies[%d] (%s): length %d must be %d", i, ie.GetType(), n, want)
	}
	return nil
}

func ieUint(ie *pb.IE) uint32 {
	v := ie.GetValue()
	switch len(v) {
	case 1:
		return uint32(v[0])
	case 4:
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func iePrefix(i int, ie *pb.IE) (string, error) {
	v := ie.GetValue()
	a, _ := netip.AddrFromSlice(v[:len(v)-1])
	p, err := a.Prefix(int(v[len(v)-1]))
	if err != nil {
		return "", fmt.Errorf("ies[%d] (%s): prefix length %d is too long", i, ie.GetType(), v[len(v)-1])
	}
	return p.String(), nil
}

func iePorts(ie *pb.IE) string {
	v := ie.GetValue()
	return fmt.Sprintf("%d-%d", binary.BigEndian.Uint16(v), binary.BigEndian.Uint16(v[2:]))
}

// decodeInterface names the FAR target an INTERFACE IE gives.
func decodeInterface(i int, v uint32, c *Config) (string, error) {
	switch {
	case v == 0:
		return "lan", nil
	case v == ifaceLBR:
		return "lbr", nil
	case int(v) <= len(c.WANs):
		return c.WANs[v-1].Name, nil
	}
	return "", fmt.Errorf("ies[%d] (INTERFACE): %d is not 0 (NON-GRE), 1-%d (GRE-WAN) or 0xFFFFFFFF (LBR)", i, v, len(c.WANs))
}

// once records an IE of a type that may occur only once in a rule, and
// fails if one occurred before.
func once(i int, t pb.IEType, seen map[pb.IEType]bool) error {
	if seen[t] {
		return fmt.Errorf("ies[%d]: %s appears twice", i, t)
	}
	seen[t] = true
	return nil
}

// decodePDR turns a PDR's IEs into a Rule; a delete needs only RULE_ID.
// Every PDR IE occurs at most once.
func decodePDR(r *pb.Rule, c *Config, del bool) (Rule, error) {
	var out Rule
	seen := map[pb.IEType]bool{}
	for i, ie := range r.GetIes() {
		if err := checkIE(i, ie); err != nil {
			return out, err
		}
		if err := once(i, ie.GetType(), seen); err != nil {
			return out, err
		}
		if del && ie.GetType() != pb.IEType_RULE_ID {
			return out, fmt.Errorf("ies[%d]: a delete carries only RULE_ID, not %s", i, ie.GetType())
		}
		v := ieUint(ie)
		var err error
		switch ie.GetType() {
		case pb.IEType_RULE_ID:
			out.ID = v
		case pb.IEType_PRECEDENCE:
			out.Precedence = v
		case pb.IEType_SRC_IP:
			out.Src, err = iePrefix(i, ie)
		case pb.IEType_DST_IP:
			out.Dst, err = iePrefix(i, ie)
		case pb.IEType_PROTOCOL:
			out.Proto = strconv.Itoa(int(v))
		case pb.IEType_TOS:
			t := int(v)
			out.TOS = &t
		case pb.IEType_SRC_PORTS:
			out.SrcPorts = iePorts(ie)
		case pb.IEType_DST_PORTS:
			out.DstPorts = iePorts(ie)
		case pb.IEType_ACTION:
			names := map[uint32]string{sdPass: "pass", sdDrop: "drop", sdRedirect: "redirect"}
			if out.Action = names[v]; out.Action == "" {
				return out, fmt.Errorf("ies[%d] (ACTION): %d is not 1 (PASS), 2 (DROP) or 3 (REDIRECT)", i, v)
			}
		case pb.IEType_INTERFACE:
			out.Target, err = decodeInterface(i, v, c)
		default:
			return out, fmt.Errorf("ies[%d]: %s is not an IE of a PDR", i, ie.GetType())
		}
		if err != nil {
			return out, err
		}
	}
	if !seen[pb.IEType_RULE_ID] {
		return out, fmt.Errorf("RULE_ID is required")
	}
	if !del && !seen[pb.IEType_ACTION] {
		return out, fmt.Errorf("ACTION is required")
	}
	return out, nil
}

// decodeLBR turns an LBR's IEs into an LBRConfig: TOS or DEFAULT_CLASS,
// then INTERFACE, WEIGHT pairs (a delete: the class alone). TOS and
// DEFAULT_CLASS occur at most once, INTERFACE once per overlay, and WEIGHT
// at most once after each INTERFACE.
func decodeLBR(r *pb.Rule, c *Config) (LBRConfig, error) {
	var out LBRConfig
	seen := map[pb.IEType]bool{}
	iface, weighted := -1, false // the last INTERFACE's index; whether it has its WEIGHT
	for i, ie := range r.GetIes() {
		if err := checkIE(i, ie); err != nil {
			return out, err
		}
		v := ieUint(ie)
		switch ie.GetType() {
		case pb.IEType_TOS:
			if err := once(i, ie.GetType(), seen); err != nil {
				return out, err
			}
			t := int(v)
			out.TOS = &t
		case pb.IEType_DEFAULT_CLASS:
			if err := once(i, ie.GetType(), seen); err != nil {
				return out, err
			}
			if v != 1 {
				return out, fmt.Errorf("ies[%d] (DEFAULT_CLASS): value must be 1, got %d", i, v)
			}
			out.Default = true
		case pb.IEType_INTERFACE:
			name, err := decodeInterface(i, v, c)
			if err != nil || name == "lan" || name == "lbr" {
				return out, fmt.Errorf("ies[%d] (INTERFACE): an LBR's overlays are GRE-WANs 1-%d, not %d", i, len(c.WANs), v)
			}
			out.Overlays = append(out.Overlays, Overlay{WAN: name, Weight: 1})
			iface, weighted = i, false
		case pb.IEType_WEIGHT:
			if iface < 0 {
				return out, fmt.Errorf("ies[%d] (WEIGHT): a WEIGHT follows an INTERFACE", i)
			}
			if weighted {
				return out, fmt.Errorf("ies[%d]: WEIGHT appears twice for the INTERFACE at ies[%d]", i, iface)
			}
			weighted = true
			out.Overlays[len(out.Overlays)-1].Weight = int(v)
		default:
			return out, fmt.Errorf("ies[%d]: %s is not an IE of an LBR", i, ie.GetType())
		}
	}
	return out, nil
}

func ieOf(t pb.IEType, v []byte) *pb.IE { return &pb.IE{Type: t, Length: uint32(len(v)), Value: v} }

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// encodeInterface is decodeInterface's inverse.
func encodeInterface(target string, c *Config) uint32 {
	switch target {
	case "lan":
		return 0
	case "lbr":
		return ifaceLBR
	}
	return uint32(c.wanIndex(target) + 1)
}

// prefixValue is the SRC_IP or DST_IP value of a validated rule's prefix,
// or nil for an open one. parseRule keeps a /0 prefix as the rule's family
// alone (pfx invalid, the field set), so that is the family's zero address
// with prefix length 0.
func prefixValue(pfx netip.Prefix, set bool, family int) []byte {
	switch {
	case pfx.IsValid():
		return append(pfx.Addr().AsSlice(), byte(pfx.Bits()))
	case !set:
		return nil
	case family == 6:
		return make([]byte, 17) // ::/0
	}
	return make([]byte, 5) // 0.0.0.0/0
}

// encodePDR is decodePDR's inverse for a validated rule.
func encodePDR(p *pdr, c *Config) *pb.Rule {
	ies := []*pb.IE{ieOf(pb.IEType_RULE_ID, u32(p.ID)), ieOf(pb.IEType_PRECEDENCE, u32(p.Precedence))}
	for _, f := range []struct {
		t   pb.IEType
		pfx netip.Prefix
		set bool
	}{{pb.IEType_SRC_IP, p.src, p.Src != ""}, {pb.IEType_DST_IP, p.dst, p.Dst != ""}} {
		if v := prefixValue(f.pfx, f.set, p.family); v != nil {
			ies = append(ies, ieOf(f.t, v))
		}
	}
	if p.proto >= 0 {
		ies = append(ies, ieOf(pb.IEType_PROTOCOL, []byte{byte(p.proto)}))
	}
	if p.tos >= 0 {
		ies = append(ies, ieOf(pb.IEType_TOS, []byte{byte(p.tos)}))
	}
	for _, f := range []struct {
		t   pb.IEType
		rng [2]uint16
	}{{pb.IEType_SRC_PORTS, p.sport}, {pb.IEType_DST_PORTS, p.dport}} {
		if f.rng != [2]uint16{0, 65535} {
			ies = append(ies, ieOf(f.t, binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, f.rng[0]), f.rng[1])))
		}
	}
	ies = append(ies, ieOf(pb.IEType_ACTION, []byte{p.action}))
	if p.action == sdRedirect {
		ies = append(ies, ieOf(pb.IEType_INTERFACE, u32(encodeInterface(p.Target, c))))
	}
	return &pb.Rule{Type: pb.RuleType_PDR, Ies: ies}
}

// encodeLBR is decodeLBR's inverse.
func encodeLBR(l *lbrClass, c *Config) *pb.Rule {
	var ies []*pb.IE
	if l.Default {
		ies = append(ies, ieOf(pb.IEType_DEFAULT_CLASS, []byte{1}))
	} else {
		ies = append(ies, ieOf(pb.IEType_TOS, []byte{byte(*l.TOS)}))
	}
	for _, o := range l.Overlays {
		ies = append(ies, ieOf(pb.IEType_INTERFACE, u32(encodeInterface(o.WAN, c))), ieOf(pb.IEType_WEIGHT, u32(uint32(o.Weight))))
	}
	return &pb.Rule{Type: pb.RuleType_LBR, Ies: ies}
}
