package module

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
)

// ReadPerCPU visits every entry once with every CPU's value, across more
// entries than one batch holds.
func TestReadPerCPU(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("TestReadPerCPU makes a BPF map: run it as root")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUHash, KeySize: 4, ValueSize: 8, MaxEntries: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ncpu := ebpf.MustPossibleCPU()
	const entries = 700
	for k := uint32(0); k < entries; k++ {
		v := make([]uint64, ncpu)
		for c := range v {
			v[c] = uint64(k)*10 + uint64(c)
		}
		if err := m.Put(k, v); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint32]bool{}
	err = ReadPerCPU(m, func(k uint32, v []uint64) {
		if seen[k] || len(v) != ncpu {
			t.Errorf("key %d: seen before %v, %d values", k, seen[k], len(v))
		}
		seen[k] = true
		for c, x := range v {
			if x != uint64(k)*10+uint64(c) {
				t.Errorf("key %d CPU %d: %d", k, c, x)
			}
		}
	})
	if err != nil || len(seen) != entries {
		t.Fatalf("ReadPerCPU: %v, %d of %d keys", err, len(seen), entries)
	}
}
