package kernel

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

func TestMapBytes(t *testing.T) {
	cases := []struct {
		name string
		maps map[string]*ebpf.MapSpec
		cpus int
		want uint64
	}{
		{"none", nil, 4, 0},
		{"hash", map[string]*ebpf.MapSpec{"h": {Type: ebpf.Hash, KeySize: 4, ValueSize: 12, MaxEntries: 100}}, 4, 1600},
		{"per-CPU value once per CPU", map[string]*ebpf.MapSpec{"p": {Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 10}}, 4, 10 * (4 + 32)},
		{"LRU per-CPU", map[string]*ebpf.MapSpec{"l": {Type: ebpf.LRUCPUHash, KeySize: 8, ValueSize: 8, MaxEntries: 2}}, 3, 2 * (8 + 24)},
		{"ring buffer: its bytes", map[string]*ebpf.MapSpec{"r": {Type: ebpf.RingBuf, MaxEntries: 4096}}, 4, 4096},
		{"several add up", map[string]*ebpf.MapSpec{
			"a": {Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1},
			"b": {Type: ebpf.LPMTrie, KeySize: 8, ValueSize: 8, MaxEntries: 1 << 20}}, 1, 8 + 16<<20},
	}
	for _, c := range cases {
		if got := mapBytes(&ebpf.CollectionSpec{Maps: c.maps}, c.cpus); got != c.want {
			t.Errorf("%s: %d bytes, want %d", c.name, got, c.want)
		}
	}
}

func TestApplySizes(t *testing.T) {
	spec := &ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{"h": {Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 1}}}
	if err := applySizes(spec, map[string]uint32{"h": 64}); err != nil || spec.Maps["h"].MaxEntries != 64 {
		t.Fatalf("applySizes: %v, max_entries %d", err, spec.Maps["h"].MaxEntries)
	}
	if got := mapBytes(spec, 1); got != 64*8 {
		t.Fatalf("after sizes: %d bytes, want %d", got, 64*8)
	}
	if err := applySizes(spec, map[string]uint32{"nosuch": 1}); !errors.Is(err, errdefs.ErrUnprocessable) {
		t.Fatalf("an unknown map: %v", err)
	}
}
