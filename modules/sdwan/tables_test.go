package main

import (
	"testing"
	"time"

	"github.com/oakestra/netmanager/test/bpftest"
)

// slotOf returns the slot holding rule id.
func (w *gw) slotOf(t *testing.T, id uint32) int {
	t.Helper()
	for s, r := range w.g.tables.slots {
		if r != nil && r.ID == id {
			return s
		}
	}
	t.Fatalf("rule %d has no slot", id)
	return -1
}

func (w *gw) update(t *testing.T, r Rule) {
	t.Helper()
	if err := w.g.applyRules(ruleChange{op: "update", rules: []Rule{r}}); err != nil {
		t.Fatal(err)
	}
}

// An update that keeps a rule's match keeps its slot (the generation
// carries precedence and action) and still takes effect; a changed match
// gets a fresh slot, and the old one is cleared once past the grace period.
func TestUpdateKeepsSlotOfSameMatch(t *testing.T) {
	w := newGW(t, `[{"id": 1, "precedence": 10, "dst": "10.2.0.0/16", "action": "redirect", "target": "wan1"}]`, `[]`, "")
	frame := func(dst string) []byte { return lanUDP(t, dst, 1000, 5001, 0) }
	s := w.slotOf(t, 1)
	w.update(t, Rule{ID: 1, Precedence: 5, Dst: "10.2.0.0/16", Action: "drop"})
	if got := w.slotOf(t, 1); got != s {
		t.Fatalf("slot %d became %d for a change of precedence and action", s, got)
	}
	if v, _ := w.run(t, "lan0", frame("10.2.0.7")); v != drop {
		t.Fatalf("the updated action is not in force: %s", bpftest.Verdict(v))
	}
	w.update(t, Rule{ID: 1, Precedence: 5, Dst: "10.3.0.0/16", Action: "redirect", Target: "wan1"})
	if w.slotOf(t, 1) == s || w.g.tables.stale[s] == nil {
		t.Fatal("a changed match kept its slot")
	}
	if v, out := w.run(t, "lan0", frame("10.3.0.7")); wanOf(t, v, out) != "wan1" {
		t.Fatal("the new match is not in force")
	}
	if v, _ := w.run(t, "lan0", frame("10.2.0.7")); v != next {
		t.Fatal("the old match still applies")
	}
	time.Sleep(grace)
	w.update(t, Rule{ID: 1, Precedence: 6, Dst: "10.3.0.0/16", Action: "redirect", Target: "wan1"})
	if w.g.tables.stale[s] != nil {
		t.Fatal("the old slot is not cleared past the grace period")
	}
}

// Each change writes the next generation of the ring and makes it active;
// a generation is rewritten only a grace period after it stopped being
// active, however fast the changes come.
func TestGenerationsRing(t *testing.T) {
	w := newGW(t, `[{"id": 1, "precedence": 10, "dst": "10.2.0.0/16", "action": "redirect", "target": "wan1"}]`, `[]`, "")
	var st sdState
	read := func() uint32 {
		if err := w.coll.Maps["state"].Lookup(uint32(0), &st); err != nil {
			t.Fatal(err)
		}
		return st.Gen
	}
	start := read()
	var firstFlip, rewrite time.Time
	for i := 1; i <= sdGens+1; i++ {
		w.update(t, Rule{ID: 1, Precedence: uint32(10 + i), Dst: "10.2.0.0/16", Action: "redirect", Target: "wan1"})
		switch i {
		case 1:
			firstFlip = w.g.tables.lastFlip
		case sdGens:
			rewrite = w.g.tables.lastFlip
		}
		if g := read(); g != (start+uint32(i))%sdGens {
			t.Fatalf("change %d made generation %d active, want %d", i, g, (start+uint32(i))%sdGens)
		}
		var rs sdRuleset
		if err := w.coll.Maps["rulesets"].Lookup(st.Gen, &rs); err != nil {
			t.Fatal(err)
		}
		if p := rs.Rule[w.slotOf(t, 1)].Precedence; p != uint32(10+i) {
			t.Fatalf("generation %d holds precedence %d, want %d", st.Gen, p, 10+i)
		}
	}
	// Change sdGens rewrote the generation change 1 left: not before grace.
	if d := rewrite.Sub(firstFlip); d < grace {
		t.Fatalf("a generation was rewritten %v after it stopped being active (grace %v)", d, grace)
	}
}
