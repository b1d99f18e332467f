package ebpfmanager

import "testing"

func TestPlaceTCX(t *testing.T) {
	owned := map[uint32]rank{
		10: {priority: 10, seq: 1},
		20: {priority: 20, seq: 2},
		21: {priority: 20, seq: 3},
		30: {priority: 30, seq: 4},
		90: {priority: SLAPriority, seq: 1}, // an SLA instance loaded first
		91: {priority: SLAPriority, seq: 6},
	}
	cases := []struct {
		name  string
		chain []uint32
		r     rank
		want  Place
	}{
		{"empty chain", nil, rank{5, 9}, Place{Anchor: AnchorTail}},
		{"only foreign programs", []uint32{900, 901}, rank{5, 9}, Place{Anchor: AnchorTail}},
		{"lowest goes before the first", []uint32{10, 20, 30}, rank{5, 9}, Place{Anchor: AnchorBefore, ProgID: 10}},
		{"middle", []uint32{10, 20, 30}, rank{15, 9}, Place{Anchor: AnchorBefore, ProgID: 20}},
		{"highest goes after the last", []uint32{10, 20, 30}, rank{40, 9}, Place{Anchor: AnchorAfter, ProgID: 30}},
		{"tie goes after the older ones", []uint32{10, 20, 21, 30}, rank{20, 9}, Place{Anchor: AnchorBefore, ProgID: 30}},
		{"older tie goes before the newer", []uint32{10, 21, 30}, rank{20, 2}, Place{Anchor: AnchorBefore, ProgID: 21}},
		{"foreign programs are stepped over", []uint32{900, 10, 901, 30}, rank{20, 9}, Place{Anchor: AnchorBefore, ProgID: 30}},
		{"after ours, before trailing foreign", []uint32{10, 900}, rank{20, 9}, Place{Anchor: AnchorAfter, ProgID: 10}},
		// SLA instances (SLAPriority) stay after every operator instance,
		// whichever was loaded first.
		{"operator loaded after an SLA instance goes before it", []uint32{10, 90}, rank{MaxPriority, 9}, Place{Anchor: AnchorBefore, ProgID: 90}},
		{"SLA instance goes after every operator one", []uint32{10, 30}, rank{SLAPriority, 9}, Place{Anchor: AnchorAfter, ProgID: 30}},
		{"SLA instances in load order", []uint32{10, 90, 91}, rank{SLAPriority, 5}, Place{Anchor: AnchorBefore, ProgID: 91}},
	}
	for _, c := range cases {
		got := placeTCX(c.chain, owned, c.r, 7)
		c.want.Revision = 7
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestLegacyPriority(t *testing.T) {
	cases := []struct {
		prio, tie int
		want      uint16
		ok        bool
	}{
		{1, 0, 64, true},
		{1, 1, 65, true},
		{2, 0, 128, true},
		{1000, 63, 64063, true},
		{0, 0, 0, false},
		{5, 64, 0, false},
		// SLA instances: after every operator filter, up to 65535.
		{SLAPriority, 0, 64064, true},
		{SLAPriority, 1, 64065, true},
		{SLAPriority, maxSLATies - 1, 65535, true},
		{SLAPriority, maxSLATies, 0, false},
		{SLAPriority + 1, 0, 0, false},
	}
	var prev uint16
	for _, c := range cases {
		got, err := legacyPriority(c.prio, c.tie)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("legacyPriority(%d, %d) = %d, %v", c.prio, c.tie, got, err)
		}
		if c.ok && got <= prev && c.prio != 1000 {
			t.Errorf("not increasing: %d after %d", got, prev)
		}
		if c.ok {
			prev = got
		}
	}
}
