package main

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
)

// Go mirrors of the structs in firewall.h (TestStructsMatchC checks them).
type (
	fwState struct {
		Gen         uint32
		Words       [2]uint32
		DefaultDeny uint32
		Stateful    uint32
		Version     uint32
		FlowTimeout uint64
	}
	fwLPM4 struct {
		Prefixlen uint32
		Gen       uint8
		Addr      [4]uint8
	}
	fwLPM6 struct {
		Prefixlen uint32
		Gen       uint8
		Addr      [16]uint8
	}
	fwRule    struct{ Action uint32 }
	fwStatKey struct{ Ifindex, Dir uint32 }
	fwStat    struct{ Allowed, Denied uint64 }
	fwFlow    struct {
		Ifindex      uint32
		Family       uint8
		Proto        uint8
		Pad          uint16
		Saddr, Daddr [16]uint8
		Sport, Dport uint16
	}
	fwSeen struct {
		Seen    uint64
		Version uint32
		Slot    uint32
	}
)

// grace is how long the control plane waits after a flip before it rewrites
// the generation packets used until then: a TC program runs to completion in
// microseconds, without sleeping.
const grace = 10 * time.Millisecond

// maps names the data plane's maps the control plane writes.
var mapNames = []string{"state", "src4", "dst4", "src6", "dst6", "protos", "dirs", "sport_class", "dport_class",
	"sport_bits", "dport_bits", "rules", "hits", "stats", "flows"}

// generations installs compiled rule sets into the inactive generation and
// flips to it, keeping hit counts per rule id across flips.
type generations struct {
	m        map[string]*ebpf.Map
	state    fwState
	lastFlip time.Time
	lpm      [2]map[string][]any // LPM keys written per generation and map
	order    [2][]string         // rule ids by index per generation
	carried  map[string]uint64   // hits of rule ids from folded generations
	ncpu     int
}

// newGenerations takes the data plane's maps; with write, it writes st (a
// fresh data plane: generation 0, empty).
func newGenerations(maps map[string]*ebpf.Map, st fwState, write bool) (*generations, error) {
	g := &generations{m: map[string]*ebpf.Map{}, state: st, carried: map[string]uint64{}}
	for _, n := range mapNames {
		if maps[n] == nil {
			return nil, fmt.Errorf("data plane has no map %q", n)
		}
		g.m[n] = maps[n]
	}
	g.lpm = [2]map[string][]any{{}, {}}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	g.ncpu = ncpu
	if !write {
		return g, nil
	}
	return g, g.m["state"].Put(uint32(0), g.state)
}

// install writes t into the inactive generation and makes it the active one.
func (g *generations) install(t tables) error {
	next := 1 - g.state.Gen
	if wait := time.Until(g.lastFlip.Add(grace)); wait > 0 {
		time.Sleep(wait)
	}
	if err := g.fold(next, t.order); err != nil {
		return err
	}
	if err := g.write(next, t); err != nil {
		return err
	}
	g.state.Words[next] = t.words
	g.state.Gen = next
	if err := g.m["state"].Put(uint32(0), g.state); err != nil {
		return fmt.Errorf("flip generation: %w", err)
	}
	g.order[next] = t.order
	g.lastFlip = time.Now()
	// The version moves in a write of its own, after the flip: a packet
	// that reads the new version then sees the new generation too, so a
	// flow's cached verdict is never stamped with a version it was not
	// judged by (firewall.bpf.c, judge).
	g.state.Version++
	if err := g.m["state"].Put(uint32(0), g.state); err != nil {
		return fmt.Errorf("bump rule set version: %w", err)
	}
	return nil
}

// fold adds the frozen counts of generation gen to the carried totals and
// zeroes them; ids not in the coming set are forgotten.
func (g *generations) fold(gen uint32, coming []string) error {
	zero := make([]uint64, g.ncpu)
	for i, id := range g.order[gen] {
		k := gen*fwMaxRules + uint32(i)
		var perCPU []uint64
		if err := g.m["hits"].Lookup(k, &perCPU); err != nil {
			return fmt.Errorf("read hits: %w", err)
		}
		for _, v := range perCPU {
			g.carried[id] += v
		}
		if err := g.m["hits"].Put(k, zero); err != nil {
			return fmt.Errorf("reset hits: %w", err)
		}
	}
	keep := map[string]bool{}
	for _, id := range coming {
		keep[id] = true
	}
	for id := range g.carried {
		if !keep[id] {
			delete(g.carried, id)
		}
	}
	return nil
}

func (g *generations) write(gen uint32, t tables) error {
	var errs []error
	put := func(name string, keys []uint32, vals any) {
		if len(keys) == 0 {
			return
		}
		if _, err := g.m[name].BatchUpdate(keys, vals, nil); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", name, err))
		}
	}
	idx := func(base uint32, n int) []uint32 {
		ks := make([]uint32, n)
		for i := range ks {
			ks[i] = base + uint32(i)
		}
		return ks
	}
	rules := make([]fwRule, len(t.actions))
	for i, a := range t.actions {
		rules[i] = fwRule{Action: a}
	}
	put("rules", idx(gen*fwMaxRules, len(rules)), rules)
	put("dirs", idx(gen*2, 2), t.dirs[:])
	put("protos", idx(gen*256, 256), t.protos[:])
	put("sport_class", idx(gen*fwPorts, fwPorts), t.sportClass)
	put("dport_class", idx(gen*fwPorts, fwPorts), t.dportClass)
	put("sport_bits", idx(gen*fwMaxClasses, len(t.sportBits)), t.sportBits)
	put("dport_bits", idx(gen*fwMaxClasses, len(t.dportBits)), t.dportBits)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for name, table := range map[string]map[netip.Prefix]bits{"src4": t.src4, "dst4": t.dst4, "src6": t.src6, "dst6": t.dst6} {
		for _, k := range g.lpm[gen][name] {
			if err := g.m[name].Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("clear %s: %w", name, err)
			}
		}
		g.lpm[gen][name] = nil
		for p, b := range table {
			k := lpmKey(gen, p)
			if err := g.m[name].Put(k, b); err != nil {
				return fmt.Errorf("write %s %s: %w", name, p, err)
			}
			g.lpm[gen][name] = append(g.lpm[gen][name], k)
		}
	}
	return nil
}

func lpmKey(gen uint32, p netip.Prefix) any {
	if p.Addr().Is4() {
		return fwLPM4{Prefixlen: 8 + uint32(p.Bits()), Gen: uint8(gen), Addr: p.Addr().As4()}
	}
	return fwLPM6{Prefixlen: 8 + uint32(p.Bits()), Gen: uint8(gen), Addr: p.Addr().As16()}
}

// hits returns the packets each current rule decided, by id.
func (g *generations) hits() (map[string]uint64, error) {
	out := map[string]uint64{}
	for id, n := range g.carried {
		out[id] = n
	}
	for gen := uint32(0); gen < 2; gen++ {
		for i, id := range g.order[gen] {
			var perCPU []uint64
			if err := g.m["hits"].Lookup(gen*fwMaxRules+uint32(i), &perCPU); err != nil {
				return nil, fmt.Errorf("read hits: %w", err)
			}
			for _, v := range perCPU {
				out[id] += v
			}
		}
	}
	return out, nil
}
