package kernel

import (
	"fmt"
	"path/filepath"

	"github.com/cilium/ebpf"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// MapBytes reads an object file, applies sizes as Load would, and returns
// the memory its maps take (mapBytes). It loads nothing.
func (k *Kernel) MapBytes(object string, sizes map[string]uint32) (uint64, error) {
	spec, err := ebpf.LoadCollectionSpec(object)
	if err != nil {
		return 0, fmt.Errorf("%w: read %s: %v", errdefs.ErrUnprocessable, filepath.Base(object), err)
	}
	if err := applySizes(spec, sizes); err != nil {
		return 0, err
	}
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return 0, fmt.Errorf("possible CPUs: %w", err)
	}
	return mapBytes(spec, cpus), nil
}

// applySizes sets the max_entries a module's MapSizes asked for.
func applySizes(spec *ebpf.CollectionSpec, sizes map[string]uint32) error {
	for name, size := range sizes {
		ms := spec.Maps[name]
		if ms == nil {
			return fmt.Errorf("%w: MapSizes names map %q, which the data plane lacks", errdefs.ErrUnprocessable, name)
		}
		ms.MaxEntries = size
	}
	return nil
}

// mapBytes is the memory a collection's maps take, as the operator's limits
// count it: per map MaxEntries × (KeySize + ValueSize), the value once per
// possible CPU for a per-CPU map, MaxEntries bytes for a ring buffer. The
// kernel's own overhead (hash buckets, per-element headers) is not counted.
func mapBytes(spec *ebpf.CollectionSpec, cpus int) uint64 {
	var total uint64
	for _, ms := range spec.Maps {
		entries := uint64(ms.MaxEntries)
		switch ms.Type {
		case ebpf.RingBuf, ebpf.UserRingbuf:
			total += entries
		case ebpf.PerCPUHash, ebpf.PerCPUArray, ebpf.LRUCPUHash, ebpf.PerCPUCGroupStorage:
			total += entries * (uint64(ms.KeySize) + uint64(ms.ValueSize)*uint64(cpus))
		default:
			total += entries * (uint64(ms.KeySize) + uint64(ms.ValueSize))
		}
	}
	return total
}
