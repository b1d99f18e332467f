package main

import (
	"net/netip"
	"sort"
)

// C sizes (firewall.h).
const (
	fwMaxRules   = 2048
	fwWords      = fwMaxRules / 64
	fwMaxClasses = 2*fwMaxRules + 2
	fwPorts      = 65536
)

// bits mirrors struct fw_bits: one bit per rule index.
type bits struct{ W [fwWords]uint64 }

func (b *bits) set(i int) { b.W[i/64] |= 1 << (uint(i) % 64) }

// tables is a compiled rule set: what one generation of the maps holds.
type tables struct {
	order      []string // rule ids by index (priority order)
	words      uint32
	actions    []uint32 // FW_ALLOW / FW_DENY by index
	dirs       [2]bits  // FW_DIR_INGRESS, FW_DIR_EGRESS
	protos     [256]bits
	src4, dst4 map[netip.Prefix]bits
	src6, dst6 map[netip.Prefix]bits
	sportClass []uint16 // port -> class; class 0 is "no ports"
	dportClass []uint16
	sportBits  []bits // class -> rules
	dportBits  []bits
}

// sortRules orders rules as they are matched: priority, then order of addition.
func sortRules(rs []rule) []rule {
	out := append([]rule(nil), rs...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].prio != out[j].prio {
			return out[i].prio < out[j].prio
		}
		return out[i].seq < out[j].seq
	})
	return out
}

// compile turns rules (in match order) into lookup tables. It is pure.
func compile(rs []rule) tables {
	t := tables{words: uint32((len(rs) + 63) / 64)}
	for i, r := range rs {
		t.order = append(t.order, r.ID)
		act := uint32(0)
		if r.deny {
			act = 1
		}
		t.actions = append(t.actions, act)
		if r.ingress {
			t.dirs[0].set(i)
		}
		if r.egress {
			t.dirs[1].set(i)
		}
		for p := 0; p < 256; p++ {
			if r.proto == -1 || r.proto == p {
				t.protos[p].set(i)
			}
		}
	}
	t.src4 = prefixTable(rs, netip.MustParsePrefix("0.0.0.0/0"), func(r rule) (netip.Prefix, bool) { return r.src, r.v4 })
	t.dst4 = prefixTable(rs, netip.MustParsePrefix("0.0.0.0/0"), func(r rule) (netip.Prefix, bool) { return r.dst, r.v4 })
	t.src6 = prefixTable(rs, netip.MustParsePrefix("::/0"), func(r rule) (netip.Prefix, bool) { return r.src, r.v6 })
	t.dst6 = prefixTable(rs, netip.MustParsePrefix("::/0"), func(r rule) (netip.Prefix, bool) { return r.dst, r.v6 })
	t.sportClass, t.sportBits = portTable(rs, func(r rule) portRange { return r.sport })
	t.dportClass, t.dportBits = portTable(rs, func(r rule) portRange { return r.dport })
	return t
}

// prefixTable maps every prefix a rule names (and the family's /0) to the
// rules whose prefix contains it. A longest-prefix match on an address then
// yields exactly the rules whose prefix contains the address: every rule
// prefix that contains the address contains the longest one that does.
func prefixTable(rs []rule, all netip.Prefix, field func(rule) (netip.Prefix, bool)) map[netip.Prefix]bits {
	keys := map[netip.Prefix]bool{all: true}
	for _, r := range rs {
		if p, ok := field(r); ok && p.IsValid() {
			keys[p] = true
		}
	}
	out := make(map[netip.Prefix]bits, len(keys))
	for k := range keys {
		var b bits
		for i, r := range rs {
			p, ok := field(r)
			if !ok {
				continue
			}
			if !p.IsValid() || (p.Bits() <= k.Bits() && p.Contains(k.Addr())) {
				b.set(i)
			}
		}
		out[k] = b
	}
	return out
}

// portTable splits the port space at every range boundary into intervals;
// each interval is a class whose rules are those whose range covers it (or
// that name no range). Class 0 is for packets without ports: only rules
// without a range match them.
func portTable(rs []rule, field func(rule) portRange) ([]uint16, []bits) {
	cuts := map[int]bool{0: true}
	for _, r := range rs {
		if pr := field(r); pr.set {
			cuts[int(pr.lo)] = true
			cuts[int(pr.hi)+1] = true
		}
	}
	starts := make([]int, 0, len(cuts))
	for c := range cuts {
		if c < fwPorts {
			starts = append(starts, c)
		}
	}
	sort.Ints(starts)
	classes := make([]uint16, fwPorts)
	var none bits
	for i, r := range rs {
		if !field(r).set {
			none.set(i)
		}
	}
	set := []bits{none}
	for n, lo := range starts {
		hi := fwPorts - 1
		if n+1 < len(starts) {
			hi = starts[n+1] - 1
		}
		var b bits
		for i, r := range rs {
			if field(r).covers(lo, hi) {
				b.set(i)
			}
		}
		cls := uint16(len(set))
		set = append(set, b)
		for p := lo; p <= hi; p++ {
			classes[p] = cls
		}
	}
	return classes, set
}
