package ebpfmanager

import (
	"reflect"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
)

type reasonerMod struct {
	module.Module
	reasons map[uint32]string
}

func (r reasonerMod) DropReasons() map[uint32]string { return r.reasons }

func TestDropReasonName(t *testing.T) {
	named := reasonerMod{reasons: map[uint32]string{1: "rule", 2: "default deny", 3: ""}}
	for _, c := range []struct {
		mod  module.Module
		code uint32
		want string
	}{
		{named, 0, "unspecified"},
		{named, 1, "rule"},
		{named, 2, "default deny"},
		{named, 3, "reason 3"},   // an empty name is no name
		{named, 63, "reason 63"}, // not named
		{nil, 0, "unspecified"},
		{nil, 5, "reason 5"}, // a module without DropReasons
	} {
		if got := dropReasonName(c.mod, c.code); got != c.want {
			t.Errorf("dropReasonName(%T, %d) = %q, want %q", c.mod, c.code, got, c.want)
		}
	}
}

// dropsMap makes a real nm_drops (bpf/reasons.h) with counts put on CPUs 0
// and, when there is one, the last.
func dropsMap(t *testing.T, counts map[uint32]uint64) *ebpf.Map {
	t.Helper()
	bpftest.RequireRoot(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	for code, n := range counts {
		per := make([]uint64, ncpu)
		per[0] = n - n/2
		per[ncpu-1] += n / 2
		if err := m.Put(code, per); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// GET /metrics' drop counts: an instance whose data plane has nm_drops gets
// its non-zero counts summed over the CPUs, named by its DropReasons (an
// unnamed code "reason N", code 0 "unspecified"), sorted by reason; one
// without the map gets none.
func TestMetricsDrops(t *testing.T) {
	m := dropsMap(t, map[uint32]uint64{1: 7, 2: 3, 0: 1, 9: 2})
	h := newHarness(t, ModeTCX)
	if err := h.deploy(t, svc("a.b.c.d", 1)); err != nil {
		t.Fatal(err)
	}
	fw := h.load(t, "counter", 10)
	other := h.load(t, "other", 20)
	in := h.m.insts[fw.ID]
	in.dp.(*fakeDP).sdk = &module.DataPlane{Maps: map[string]*ebpf.Map{module.DropsMap: m}}
	in.mod = reasonerMod{Module: in.mod, reasons: map[uint32]string{1: "rule", 2: "default deny"}}

	got := h.m.Metrics()
	want := []DropCount{{"default deny", 3}, {"reason 9", 2}, {"rule", 7}, {"unspecified", 1}}
	for _, im := range got.Instances {
		switch im.ID {
		case fw.ID:
			if !reflect.DeepEqual(im.Drops, want) || im.Error != nil {
				t.Errorf("drops %+v (error %v), want %+v", im.Drops, im.Error, want)
			}
		case other.ID:
			if len(im.Drops) != 0 {
				t.Errorf("an instance without nm_drops has drops %+v", im.Drops)
			}
		}
	}
}
