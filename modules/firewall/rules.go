package main

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Rule is one firewall rule as the API and config carry it. A field left out
// matches everything.
type Rule struct {
	ID        string `json:"id,omitempty"`
	Action    string `json:"action"`              // allow | deny
	Direction string `json:"direction,omitempty"` // ingress | egress | both (service's view); default both
	Src       string `json:"src,omitempty"`       // CIDR (a bare address is a host prefix)
	Dst       string `json:"dst,omitempty"`
	Proto     string `json:"proto,omitempty"`    // tcp | udp | icmp | icmpv6 | any; default any
	SrcPorts  string `json:"srcPorts,omitempty"` // "N" or "N-M"
	DstPorts  string `json:"dstPorts,omitempty"`
	Priority  *int   `json:"priority,omitempty"` // lower first; default 100; ties in order of addition
	Hits      uint64 `json:"hits"`               // answers only: packets this rule decided
}

// DefaultRulePriority is the priority of a rule that names none.
const DefaultRulePriority = 100

var (
	errInvalid = errors.New("invalid")
	ruleIDRE   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

type portRange struct {
	lo, hi uint16
	set    bool
}

func (p portRange) covers(lo, hi int) bool { return !p.set || (int(p.lo) <= lo && hi <= int(p.hi)) }

// rule is a validated Rule, ready to compile.
type rule struct {
	Rule
	seq          int
	deny         bool
	ingress      bool // applies to traffic going to the service
	egress       bool // applies to traffic leaving the service
	v4, v6       bool // families it can match
	src, dst     netip.Prefix
	proto        int // -1: any
	sport, dport portRange
	prio         int
}

var protoNumbers = map[string]int{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "any": -1, "": -1}

// validate checks a rule; field prefixes error messages ("rules[2]").
func validate(r Rule, field string) (rule, error) {
	bad := func(name, format string, args ...any) error {
		return fmt.Errorf("%w: %s%s: %s", errInvalid, field, name, fmt.Sprintf(format, args...))
	}
	v := rule{Rule: r, v4: true, v6: true}
	v.Hits = 0
	if r.ID != "" && !ruleIDRE.MatchString(r.ID) {
		return v, bad(".id", "%q must be 1-64 of [A-Za-z0-9_.-]", r.ID)
	}
	switch r.Action {
	case "allow":
	case "deny":
		v.deny = true
	default:
		return v, bad(".action", "%q must be allow or deny", r.Action)
	}
	switch r.Direction {
	case "", "both":
		v.ingress, v.egress = true, true
		v.Direction = "both"
	case "ingress":
		v.ingress = true
	case "egress":
		v.egress = true
	default:
		return v, bad(".direction", "%q must be ingress, egress or both", r.Direction)
	}
	var err error
	if v.src, err = parsePrefix(r.Src); err != nil {
		return v, bad(".src", "%v", err)
	}
	if v.dst, err = parsePrefix(r.Dst); err != nil {
		return v, bad(".dst", "%v", err)
	}
	proto, ok := protoNumbers[strings.ToLower(r.Proto)]
	if !ok {
		return v, bad(".proto", "%q must be tcp, udp, icmp, icmpv6 or any", r.Proto)
	}
	v.proto = proto
	v.Proto = strings.ToLower(r.Proto)
	for _, p := range []netip.Prefix{v.src, v.dst} {
		if p.IsValid() {
			v.v4, v.v6 = v.v4 && p.Addr().Is4(), v.v6 && p.Addr().Is6()
		}
	}
	if proto == 1 {
		v.v6 = false
	}
	if proto == 58 {
		v.v4 = false
	}
	if !v.v4 && !v.v6 {
		return v, bad("", "src, dst and proto name different IP families")
	}
	if v.sport, err = parsePorts(r.SrcPorts); err != nil {
		return v, bad(".srcPorts", "%v", err)
	}
	if v.dport, err = parsePorts(r.DstPorts); err != nil {
		return v, bad(".dstPorts", "%v", err)
	}
	if (v.sport.set || v.dport.set) && proto != 6 && proto != 17 && proto != -1 {
		return v, bad(".proto", "ports need tcp, udp or any, not %s", r.Proto)
	}
	v.prio = DefaultRulePriority
	if r.Priority != nil {
		if *r.Priority < 0 || *r.Priority > 1<<20 {
			return v, bad(".priority", "%d must be within 0-%d", *r.Priority, 1<<20)
		}
		v.prio = *r.Priority
	}
	p := v.prio
	v.Priority = &p
	return v, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or address", s)
		}
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("%q is not a CIDR", s)
	}
	if p.Masked() != p {
		return p, fmt.Errorf("%q has host bits set (did you mean %s?)", s, p.Masked())
	}
	return p, nil
}

func parsePorts(s string) (portRange, error) {
	if s == "" {
		return portRange{}, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := strconv.Atoi(strings.TrimSpace(lo))
	h, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil || l < 1 || h < 1 || l > 65535 || h > 65535 {
		return portRange{}, fmt.Errorf("%q must be a port or a range N-M within 1-65535", s)
	}
	if l > h {
		return portRange{}, fmt.Errorf("%q is reversed (%d > %d)", s, l, h)
	}
	return portRange{lo: uint16(l), hi: uint16(h), set: true}, nil
}

// ruleSet validates a whole set: ids unique (missing ones assigned from
// next), at most limit rules. It returns the rules in their given order.
func ruleSet(rs []Rule, limit int, field string, next func() string) ([]rule, error) {
	if len(rs) > limit {
		return nil, fmt.Errorf("%w: %s: %d rules exceed the limit of %d (config maxRules)", errInvalid, field, len(rs), limit)
	}
	out := make([]rule, 0, len(rs))
	seen := map[string]bool{}
	for i, r := range rs {
		v, err := validate(r, fmt.Sprintf("%s[%d]", field, i))
		if err != nil {
			return nil, err
		}
		if v.ID != "" && seen[v.ID] {
			return nil, fmt.Errorf("%w: %s[%d].id: %q is used twice", errInvalid, field, i, v.ID)
		}
		seen[v.ID] = true
		out = append(out, v)
	}
	for i := range out {
		for out[i].ID == "" {
			if id := next(); !seen[id] {
				out[i].ID = id
				seen[id] = true
			}
		}
	}
	return out, nil
}
