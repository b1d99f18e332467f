package main

import (
	"encoding/json"
	"fmt"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// savedState is what the firewall keeps through module.Base.SaveState, so
// that after a restart with persist it takes over the rule set the kernel
// still runs instead of installing its config's again: the rules (with
// their ids and order of addition), and what maps the active generation's
// hit counters to rule ids.
type savedState struct {
	Rules   []Rule            `json:"rules"`
	Seqs    []int             `json:"seqs"`
	NextID  int               `json:"nextId"`
	Seq     int               `json:"seq"`
	Order   [2][]string       `json:"order"`
	Carried map[string]uint64 `json:"carried,omitempty"`
}

// save records the rule set; the caller holds mu (or is New). A failure is
// logged: the rules are in effect, only a restart would not know them.
func (f *Firewall) save() {
	if f.base.SaveState == nil {
		return
	}
	s := savedState{NextID: f.nextID, Seq: f.seq, Order: f.gens.order, Carried: f.gens.carried}
	for _, r := range f.rules {
		rr := r.Rule
		rr.Hits = 0
		s.Rules, s.Seqs = append(s.Rules, rr), append(s.Seqs, r.seq)
	}
	data, err := json.Marshal(s)
	if err == nil {
		err = f.base.SaveState(data)
	}
	if err != nil {
		f.base.Log.WithError(err).Warn("firewall: the rule set could not be saved for a restart")
	}
}

// restore takes over the rule set an earlier run left running: the rules
// and hit bookkeeping from the saved state, the active generation from the
// kernel. Nothing is written to the data plane.
func (f *Firewall) restore(raw json.RawMessage) error {
	var s savedState
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("saved state: %w", err)
	}
	if len(s.Seqs) != len(s.Rules) {
		return fmt.Errorf("saved state: %d rules, %d sequence numbers", len(s.Rules), len(s.Seqs))
	}
	rs, err := ruleSet(s.Rules, f.cfg.MaxRules, "saved rules", f.newID)
	if err != nil {
		return err
	}
	for i := range rs {
		rs[i].seq = s.Seqs[i]
	}
	if err := f.gens.adopt(); err != nil {
		return err
	}
	f.rules, f.nextID, f.seq = rs, s.NextID, s.Seq
	f.gens.order = s.Order
	if s.Carried != nil {
		f.gens.carried = s.Carried
	}
	return nil
}

// adopt reads the LPM keys each generation holds, as an earlier run left
// them (startGenerations read the running generation), and writes the
// state with the config's flags.
func (g *generations) adopt() error {
	for _, name := range []string{"src4", "dst4"} {
		if err := readLPM(g, name, func(k fwLPM4) uint8 { return k.Gen }); err != nil {
			return err
		}
	}
	for _, name := range []string{"src6", "dst6"} {
		if err := readLPM(g, name, func(k fwLPM6) uint8 { return k.Gen }); err != nil {
			return err
		}
	}
	return g.m["state"].Put(uint32(0), g.state)
}

// readLPM records the keys of one LPM map by their generation.
func readLPM[K any](g *generations, name string, gen func(K) uint8) error {
	var k K
	var v []byte
	it := g.m[name].Iterate()
	for it.Next(&k, &v) {
		g.lpm[gen(k)%2][name] = append(g.lpm[gen(k)%2][name], k)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}

// startGenerations makes the generations over the data plane's maps: for a
// re-adopted data plane the running generation stays active until the
// first install flips away from it.
func startGenerations(base module.Base, st fwState) (*generations, error) {
	g, err := newGenerations(base.DataPlane.Maps, st, !base.Readopted)
	if err != nil || !base.Readopted {
		return g, err
	}
	var cur fwState
	if err := g.m["state"].Lookup(uint32(0), &cur); err != nil {
		return nil, fmt.Errorf("read the running state: %w", err)
	}
	g.state.Gen, g.state.Words, g.state.Version = cur.Gen, cur.Words, cur.Version
	return g, nil
}
