package main

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"github.com/cilium/ebpf"
)

// grace is how long a rule set generation stays untouched after it stopped
// being the active one: a TC program runs to completion in microseconds,
// without sleeping, so no packet still reads it by then.
const grace = 200 * time.Microsecond

// waitUntil spins (yielding) until deadline, at most a grace period: a
// sleep that short lasts up to a millisecond in the runtime's timers,
// which would make back-to-back rule changes five times slower.
func waitUntil(deadline time.Time) {
	for time.Now().Before(deadline) {
		runtime.Gosched()
	}
}

// mapNames are the data plane's maps the control plane uses.
var mapNames = []string{"state", "roles", "wans", "rulesets", "src4", "dst4", "src6", "dst6", "protos", "toss",
	"sports", "dports", "lbrs", "flows", "stats", "wanstats", "ruleflows", "cache", "nhcache"}

// tables writes rule sets into the classifier's maps. Each rule has a slot
// for its life; installing a set writes the field bits of new slots while
// they are still disabled, then the next generation's sd_ruleset (the
// generations form a ring, and the next one has been inactive for a grace
// period), then flips the generation (and the flow cache's epoch). Slots
// of removed rules are cleared once the flip that removed them is past the
// grace period, before any reuse. A shadow of every map entry makes each
// change touch only the entries it alters.
type tables struct {
	m        map[string]*ebpf.Map
	state    sdState
	lastFlip time.Time
	inactive [sdGens]time.Time // when each generation stopped being the active one
	slots    [sdMaxRules]*pdr  // live rules by slot
	stale    [sdMaxRules]*pdr  // removed, field bits not yet cleared
	staleAt  [sdMaxRules]time.Time
	next     int // where the search for a free slot starts
	lpm      map[string]map[netip.Prefix]sdBits
	protos   [256]sdBits
	toss     [sdClasses]sdBits
	ports    map[string]*[sdPorts]sdBits
	ncpu     int
}

func newTables(maps map[string]*ebpf.Map, defaultDrop bool) (*tables, error) {
	t := &tables{m: map[string]*ebpf.Map{}, lpm: map[string]map[netip.Prefix]sdBits{},
		ports: map[string]*[sdPorts]sdBits{"sports": {}, "dports": {}}}
	for _, n := range mapNames {
		if maps[n] == nil {
			return nil, fmt.Errorf("data plane has no map %q", n)
		}
		t.m[n] = maps[n]
	}
	for _, n := range []string{"src4", "dst4", "src6", "dst6"} {
		t.lpm[n] = map[netip.Prefix]sdBits{}
	}
	if defaultDrop {
		t.state.DefaultDrop = 1
	}
	var err error
	if t.ncpu, err = ebpf.PossibleCPU(); err != nil {
		return nil, err
	}
	return t, t.m["state"].Put(uint32(0), t.state)
}

func (b *sdBits) set(slot int, on bool) {
	if on {
		b[slot/64] |= 1 << (slot % 64)
	} else {
		b[slot/64] &^= 1 << (slot % 64)
	}
}

// install makes rules the active set. A rule whose match is unchanged
// keeps its slot (precedence and action live in the generation); new ones
// and changed matches get fresh slots. On error the active set is
// unchanged (slots written so far are never enabled and get cleared).
func (t *tables) install(rules []*pdr) error {
	if err := t.sweep(false); err != nil {
		return err
	}
	keep := map[int]bool{}
	var added []int
	var errs error
	for _, r := range rules {
		if s := t.find(r); s >= 0 {
			keep[s] = true
			t.slots[s] = r // same match: the generation carries the rest
			continue
		}
		s := t.free()
		if s < 0 { // every free slot waits to be cleared
			if err := t.sweep(true); err != nil {
				errs = err
				break
			}
			s = t.free()
		}
		if s < 0 {
			errs = errors.New("no free rule slot")
			break
		}
		t.slots[s] = r
		keep[s] = true
		added = append(added, s)
		if err := t.m["ruleflows"].Put(uint32(s), make([]uint64, t.ncpu)); err != nil {
			errs = fmt.Errorf("reset rule flows: %w", err)
			break
		}
		if err := t.writeSlot(s, r, true); err != nil {
			errs = err
			break
		}
	}
	if errs == nil {
		errs = t.flip(keep)
	}
	if errs != nil {
		for _, s := range added { // never enabled: clear them
			t.stale[s], t.slots[s], t.staleAt[s] = t.slots[s], nil, time.Time{}
		}
		return fmt.Errorf("install rules: %w", errs)
	}
	for s, r := range t.slots {
		if r != nil && !keep[s] {
			t.stale[s], t.slots[s], t.staleAt[s] = r, nil, t.lastFlip
		}
	}
	return nil
}

// find returns the live slot of rule r's ID whose field bits match r's.
func (t *tables) find(r *pdr) int {
	for s, x := range t.slots {
		if x != nil && x.ID == r.ID && x.family == r.family && x.src == r.src && x.dst == r.dst && x.proto == r.proto &&
			x.tos == r.tos && x.sport == r.sport && x.dport == r.dport {
			return s
		}
	}
	return -1
}

// free returns a slot that is neither live nor waiting to be cleared.
func (t *tables) free() int {
	for i := 0; i < sdMaxRules; i++ {
		s := (t.next + i) % sdMaxRules
		if t.slots[s] == nil && t.stale[s] == nil {
			t.next = s + 1
			return s
		}
	}
	return -1
}

// sweep clears the field bits of removed rules once no packet can use
// them: those whose removal is past the grace period, and with wait the
// others too, after waiting for them.
func (t *tables) sweep(wait bool) error {
	for s, r := range t.stale {
		if r == nil {
			continue
		}
		if until := t.staleAt[s].Add(grace); time.Now().Before(until) {
			if !wait {
				continue
			}
			waitUntil(until)
		}
		if err := t.writeSlot(s, r, false); err != nil {
			return fmt.Errorf("clear rule slot %d: %w", s, err)
		}
		t.stale[s] = nil
	}
	return nil
}

// liveOrStale is every rule whose bits are in the field maps.
func (t *tables) liveOrStale() []*pdr {
	var out []*pdr
	for s := range t.slots {
		if t.slots[s] != nil {
			out = append(out, t.slots[s])
		}
		if t.stale[s] != nil {
			out = append(out, t.stale[s])
		}
	}
	return out
}

// writeSlot sets (or clears) slot s's bits for rule r in every field map.
func (t *tables) writeSlot(s int, r *pdr, on bool) error {
	for _, f := range []struct {
		name string
		pfx  netip.Prefix
	}{{"src", r.src}, {"dst", r.dst}} {
		if !f.pfx.IsValid() {
			continue
		}
		name := f.name + "4"
		if f.pfx.Addr().Is6() {
			name = f.name + "6"
		}
		if err := t.writePrefix(name, f.pfx, s, on); err != nil {
			return err
		}
	}
	if r.proto >= 0 {
		t.protos[r.proto].set(s, on)
		if err := t.m["protos"].Put(uint32(r.proto), t.protos[r.proto]); err != nil {
			return fmt.Errorf("protos: %w", err)
		}
	}
	if r.tos >= 0 {
		c := r.tos >> 2
		t.toss[c].set(s, on)
		if err := t.m["toss"].Put(uint32(c), t.toss[c]); err != nil {
			return fmt.Errorf("toss: %w", err)
		}
	}
	for _, f := range []struct {
		name string
		rng  [2]uint16
	}{{"sports", r.sport}, {"dports", r.dport}} {
		if f.rng == [2]uint16{0, 65535} {
			continue
		}
		arr := t.ports[f.name]
		keys := make([]uint32, 0, int(f.rng[1]-f.rng[0])+1)
		vals := make([]sdBits, 0, cap(keys))
		for p := int(f.rng[0]); p <= int(f.rng[1]); p++ {
			arr[p].set(s, on)
			keys = append(keys, uint32(p))
			vals = append(vals, arr[p])
		}
		if _, err := t.m[f.name].BatchUpdate(keys, vals, nil); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return nil
}

// writePrefix keeps the LPM trie name right for slot s of a rule on pfx:
// every entry inside pfx has the slot's bit, and pfx has an entry (with the
// bits of every rule covering it) while a rule uses it.
func (t *tables) writePrefix(name string, pfx netip.Prefix, s int, on bool) error {
	m := t.lpm[name]
	if _, ok := m[pfx]; !ok && on {
		var bits sdBits
		for _, r := range t.liveOrStale() {
			other := r.src
			if name[:3] == "dst" {
				other = r.dst
			}
			if other.IsValid() && other.Addr().Is4() == pfx.Addr().Is4() && other.Bits() <= pfx.Bits() && other.Contains(pfx.Addr()) {
				if sl := t.slotOf(r); sl >= 0 && sl != s {
					bits.set(sl, true)
				}
			}
		}
		m[pfx] = bits
	}
	for p, bits := range m {
		if p.Bits() >= pfx.Bits() && pfx.Contains(p.Addr()) {
			bits.set(s, on)
			m[p] = bits
			if err := t.putLPM(name, p, bits); err != nil {
				return err
			}
		}
	}
	if on {
		return nil
	}
	for _, r := range t.liveOrStale() { // is pfx still some other rule's prefix?
		other := r.src
		if name[:3] == "dst" {
			other = r.dst
		}
		if other == pfx && t.slotOf(r) != s {
			return nil
		}
	}
	delete(m, pfx)
	if err := t.m[name].Delete(lpmKey(pfx)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (t *tables) slotOf(r *pdr) int {
	for s := range t.slots {
		if t.slots[s] == r || t.stale[s] == r {
			return s
		}
	}
	return -1
}

func lpmKey(p netip.Prefix) any {
	if p.Addr().Is4() {
		return sdLPM4{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As4()}
	}
	return sdLPM6{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}
}

func (t *tables) putLPM(name string, p netip.Prefix, bits sdBits) error {
	if err := t.m[name].Put(lpmKey(p), bits); err != nil {
		return fmt.Errorf("%s %s: %w", name, p, err)
	}
	return nil
}

// flip writes the inactive generation with the slots in keep enabled and
// makes it the active one; flows classified before are reclassified.
func (t *tables) flip(keep map[int]bool) error {
	var rs sdRuleset
	for s := range keep {
		r := t.slots[s]
		rs.Enabled.set(s, true)
		rs.Rule[s] = sdRule{Precedence: r.Precedence, Action: r.action, Target: r.target}
		fam4, fam6 := r.family != 6, r.family != 4
		rs.AnySrc4.set(s, fam4 && !r.src.IsValid())
		rs.AnySrc6.set(s, fam6 && !r.src.IsValid())
		rs.AnyDst4.set(s, fam4 && !r.dst.IsValid())
		rs.AnyDst6.set(s, fam6 && !r.dst.IsValid())
		rs.AnyProto.set(s, r.proto < 0)
		rs.AnyTOS.set(s, r.tos < 0)
		rs.AnySport.set(s, r.sport == [2]uint16{0, 65535})
		rs.AnyDport.set(s, r.dport == [2]uint16{0, 65535})
	}
	next := (t.state.Gen + 1) % sdGens
	waitUntil(t.inactive[next].Add(grace))
	if err := t.m["rulesets"].Put(next, &rs); err != nil {
		return fmt.Errorf("rule set: %w", err)
	}
	st := t.state
	st.Gen = next
	st.Epoch++
	if err := t.m["state"].Put(uint32(0), st); err != nil {
		return fmt.Errorf("flip generation: %w", err)
	}
	t.lastFlip = time.Now()
	t.inactive[t.state.Gen] = t.lastFlip
	t.state = st
	return nil
}

// slotFlows reads the flows classified per rule id.
func (t *tables) slotFlows() (map[uint32]uint64, error) {
	out := map[uint32]uint64{}
	for s, r := range t.slots {
		if r == nil {
			continue
		}
		var perCPU []uint64
		if err := t.m["ruleflows"].Lookup(uint32(s), &perCPU); err != nil {
			return nil, fmt.Errorf("read rule flows: %w", err)
		}
		for _, v := range perCPU {
			out[r.ID] += v
		}
	}
	return out, nil
}
