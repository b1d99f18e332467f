package main

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gorilla/mux"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// newCounterOn makes a control plane over a loaded data plane with n
// service veths attached (ifindexes 100...), each with counts.
func newCounterOn(t testing.TB, n int) *Counter {
	t.Helper()
	coll := load(t)
	mod, err := New(module.Base{ID: "1", Name: "packetcounter", Router: mux.NewRouter(), DataPlane: &module.DataPlane{Maps: coll.Maps, Programs: coll.Programs}})
	if err != nil {
		t.Fatal(err)
	}
	c := mod.(*Counter)
	for i := 0; i < n; i++ {
		ifc := module.Interface{Name: fmt.Sprintf("oak%08x", i), Ifindex: 100 + i, Service: &module.Service{Name: "a.b.c.d"}}
		if err := c.Attach(module.Attachment{Interface: ifc, Hooks: module.Hooks}); err != nil {
			t.Fatal(err)
		}
		for _, h := range module.Hooks {
			v := make([]pcValue, ebpf.MustPossibleCPU())
			v[0] = pcValue{Packets: uint64(i + 1), Bytes: uint64(100 * (i + 1))}
			if err := c.counts.Put(pcKey{Ifindex: uint32(100 + i), Hook: uint32(h)}, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	return c
}

// Metrics reports every attached interface's counts (read in batches) in
// samples the SDK accepts.
func TestMetrics(t *testing.T) {
	c := newCounterOn(t, 300) // more entries than one batch
	ms, err := c.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if err := module.CheckMetrics(ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) != 300*2*2 {
		t.Fatalf("%d samples, want 1200", len(ms))
	}
	for _, m := range ms {
		var i int
		fmt.Sscanf(m.Labels["interface"], "oak%08x", &i)
		want := float64(i + 1) // newCounterOn's counts
		if m.Name == "bytes_total" {
			want *= 100
		}
		if m.Value != want {
			t.Errorf("%s%v = %v, want %v", m.Name, m.Labels, m.Value, want)
		}
	}
}

// BenchmarkMetrics is one scrape's reading of an instance on 50 veths.
func BenchmarkMetrics(b *testing.B) {
	c := newCounterOn(b, 50)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Metrics(); err != nil {
			b.Fatal(err)
		}
	}
}
