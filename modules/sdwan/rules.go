package main

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Rule is a PDR with its FAR, as the config, the REST routes and the gRPC
// server's replies show it. Open fields match everything.
type Rule struct {
	ID         uint32 `yaml:"id" json:"id"`
	Precedence uint32 `yaml:"precedence" json:"precedence"` // lower wins; overlapping rules need different ones
	Src        string `yaml:"src" json:"src,omitempty"`     // CIDR (IPv4 or IPv6)
	Dst        string `yaml:"dst" json:"dst,omitempty"`
	Proto      string `yaml:"proto" json:"proto,omitempty"` // tcp, udp, icmp, icmpv6 or a number
	TOS        *int   `yaml:"tos" json:"tos,omitempty"`     // ToS byte, ECN bits zero
	SrcPorts   string `yaml:"srcPorts" json:"srcPorts,omitempty"`
	DstPorts   string `yaml:"dstPorts" json:"dstPorts,omitempty"`
	Action     string `yaml:"action" json:"action"`           // pass, drop or redirect
	Target     string `yaml:"target" json:"target,omitempty"` // redirect: a WAN's name, lbr, or lan
	Flows      uint64 `yaml:"-" json:"flows"`                 // flows this rule classified
}

// pdr is a validated rule.
type pdr struct {
	Rule
	family       int          // 0 both, 4 or 6
	src, dst     netip.Prefix // invalid: open
	proto        int          // -1: open
	tos          int          // -1: open
	sport, dport [2]uint16    // {0, 65535}: open
	action       uint8
	target       uint8
}

var protoNames = map[string]int{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}

// parseRule validates r against the config's WANs; errors name the field.
func parseRule(r Rule, c *Config) (*pdr, error) {
	p := &pdr{Rule: r, proto: -1, tos: -1, sport: [2]uint16{0, 65535}, dport: [2]uint16{0, 65535}}
	for _, f := range []struct {
		name string
		v    string
		dst  *netip.Prefix
	}{{"src", r.Src, &p.src}, {"dst", r.Dst, &p.dst}} {
		if f.v == "" {
			continue
		}
		pfx, err := netip.ParsePrefix(f.v)
		if err != nil {
			a, aerr := netip.ParseAddr(f.v)
			if aerr != nil {
				return nil, fmt.Errorf("%s: %q is not a CIDR prefix", f.name, f.v)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		pfx = pfx.Masked()
		fam := 4
		if pfx.Addr().Is6() {
			fam = 6
		}
		if p.family != 0 && p.family != fam {
			return nil, fmt.Errorf("dst: %q is not of src's address family", f.v)
		}
		p.family = fam
		if pfx.Bits() > 0 {
			*f.dst = pfx
		}
	}
	if r.Proto != "" {
		n, ok := protoNames[strings.ToLower(r.Proto)]
		if !ok {
			v, err := strconv.ParseUint(r.Proto, 10, 8)
			if err != nil {
				return nil, fmt.Errorf("proto: %q is not tcp, udp, icmp, icmpv6 or 0-255", r.Proto)
			}
			n = int(v)
		}
		p.proto = n
	}
	if r.TOS != nil {
		if *r.TOS < 0 || *r.TOS > 255 || *r.TOS&3 != 0 {
			return nil, fmt.Errorf("tos: %d must be 0-255 with the ECN bits (0x03) zero", *r.TOS)
		}
		p.tos = *r.TOS
	}
	var err error
	if p.sport, err = parsePorts("srcPorts", r.SrcPorts); err != nil {
		return nil, err
	}
	if p.dport, err = parsePorts("dstPorts", r.DstPorts); err != nil {
		return nil, err
	}
	if (r.SrcPorts != "" || r.DstPorts != "") && p.proto != 6 && p.proto != 17 {
		return nil, fmt.Errorf("srcPorts/dstPorts: ports need proto tcp or udp")
	}
	switch r.Action {
	case "pass":
		p.action = sdPass
	case "drop":
		p.action = sdDrop
	case "redirect":
		p.action = sdRedirect
	default:
		return nil, fmt.Errorf("action: %q must be pass, drop or redirect", r.Action)
	}
	if p.action != sdRedirect {
		if r.Target != "" {
			return nil, fmt.Errorf("target: only a redirect has a target")
		}
		return p, nil
	}
	switch r.Target {
	case "lan":
		p.target = sdTargetLAN
	case "lbr":
		p.target = sdTargetLBR
	case "":
		return nil, fmt.Errorf("target: a redirect needs a target: a WAN's name, lbr or lan")
	default:
		i := c.wanIndex(r.Target)
		if i < 0 {
			return nil, fmt.Errorf("target: %q is not a WAN of this gateway, lbr or lan", r.Target)
		}
		p.target = uint8(i)
	}
	return p, nil
}

// parsePorts reads "80" or "1000-2000".
func parsePorts(field, s string) ([2]uint16, error) {
	if s == "" {
		return [2]uint16{0, 65535}, nil
	}
	lo, hi, found := strings.Cut(s, "-")
	if !found {
		hi = lo
	}
	a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	b, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	if err1 != nil || err2 != nil || a > b {
		return [2]uint16{}, fmt.Errorf("%s: %q is not a port or a range lo-hi", field, s)
	}
	return [2]uint16{uint16(a), uint16(b)}, nil
}

// overlaps reports whether some packet can match both rules.
func (p *pdr) overlaps(q *pdr) bool {
	if p.family != 0 && q.family != 0 && p.family != q.family {
		return false
	}
	pfx := func(a, b netip.Prefix) bool { return !a.IsValid() || !b.IsValid() || a.Overlaps(b) }
	eq := func(a, b int) bool { return a < 0 || b < 0 || a == b }
	rng := func(a, b [2]uint16) bool { return a[0] <= b[1] && b[0] <= a[1] }
	return pfx(p.src, q.src) && pfx(p.dst, q.dst) && eq(p.proto, q.proto) && eq(p.tos, q.tos) &&
		rng(p.sport, q.sport) && rng(p.dport, q.dport)
}

// checkRuleSet validates a whole set: unique ids, at most sdMaxRules, and no
// two overlapping rules of the same precedence.
func checkRuleSet(rs []*pdr) error {
	if len(rs) > sdMaxRules {
		return fmt.Errorf("rules: %d rules, at most %d", len(rs), sdMaxRules)
	}
	ids := map[uint32]bool{}
	for _, r := range rs {
		if ids[r.ID] {
			return fmt.Errorf("rule %d: the id is used twice", r.ID)
		}
		ids[r.ID] = true
	}
	sorted := append([]*pdr(nil), rs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	for i, a := range sorted {
		for _, b := range sorted[i+1:] {
			if a.Precedence == b.Precedence && a.overlaps(b) {
				return fmt.Errorf("rules %d and %d overlap and have the same precedence (%d): give one a different precedence",
					a.ID, b.ID, a.Precedence)
			}
		}
	}
	return nil
}

// lbrClass is a validated LBR: the class index (DSCP, or sdClassDefault)
// and WAN weights by index.
type lbrClass struct {
	LBRConfig
	class   int
	weights [sdMaxWANs]int
}

// parseLBR validates an LBR against the config's WANs.
func parseLBR(l LBRConfig, c *Config) (*lbrClass, error) {
	out := &lbrClass{LBRConfig: l}
	switch {
	case l.Default && l.TOS != nil:
		return nil, fmt.Errorf("tos: an LBR is either the default or for one tos, not both")
	case l.Default:
		out.class = sdClassDefault
	case l.TOS == nil:
		return nil, fmt.Errorf("tos: an LBR needs a tos (or default: true)")
	case *l.TOS < 0 || *l.TOS > 255 || *l.TOS&3 != 0:
		return nil, fmt.Errorf("tos: %d must be 0-255 with the ECN bits (0x03) zero", *l.TOS)
	default:
		out.class = *l.TOS >> 2
	}
	if len(l.Overlays) == 0 {
		return nil, fmt.Errorf("overlays: an LBR needs at least one WAN")
	}
	for i, o := range l.Overlays {
		w := c.wanIndex(o.WAN)
		if w < 0 {
			return nil, fmt.Errorf("overlays[%d].wan: %q is not a WAN of this gateway", i, o.WAN)
		}
		if o.Weight < 1 || o.Weight > 1000 {
			return nil, fmt.Errorf("overlays[%d].weight: %d must be within 1-1000", i, o.Weight)
		}
		if out.weights[w] != 0 {
			return nil, fmt.Errorf("overlays[%d].wan: %q is listed twice", i, o.WAN)
		}
		out.weights[w] = o.Weight
	}
	if s := l.SLA; s != nil && (s.LatencyMs < 0 || s.LossPercent < 0 || s.LossPercent > 100 || s.JitterMs < 0) {
		return nil, fmt.Errorf("sla: thresholds must be positive (lossPercent at most 100)")
	}
	return out, nil
}

// slots spreads an LBR's weights over the data plane's slots: each eligible
// WAN gets slots in proportion to its weight (largest remainders first).
// It returns nil when no WAN is eligible.
func slots(weights [sdMaxWANs]int, eligible func(w int) bool) []uint8 {
	total := 0
	for w, n := range weights {
		if n > 0 && eligible(w) {
			total += n
		}
	}
	if total == 0 {
		return nil
	}
	type share struct{ wan, n, rem int }
	var shares []share
	used := 0
	for w, n := range weights {
		if n > 0 && eligible(w) {
			s := share{wan: w, n: n * sdLBRSlots / total, rem: n * sdLBRSlots % total}
			used += s.n
			shares = append(shares, s)
		}
	}
	sort.SliceStable(shares, func(i, j int) bool { return shares[i].rem > shares[j].rem })
	for i := 0; used < sdLBRSlots; i, used = i+1, used+1 {
		shares[i%len(shares)].n++
	}
	out := make([]uint8, 0, sdLBRSlots)
	for _, s := range shares {
		for k := 0; k < s.n; k++ {
			out = append(out, uint8(s.wan))
		}
	}
	return out
}
