package module

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// ReadPerCPU reads every entry of a per-CPU hash map, a batch of entries
// per syscall (a lookup per entry costs a syscall each), and calls fn with
// each key and its values, one per possible CPU. fn must not keep the
// slice. It is what a module's Metrics or statistics route uses to sum its
// per-CPU counters.
func ReadPerCPU[K comparable, V any](m *ebpf.Map, fn func(K, []V)) error {
	const batch = 256
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	keys, vals := make([]K, batch), make([]V, batch*ncpu)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			fn(keys[i], vals[i*ncpu:(i+1)*ncpu])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read map %s: %w", m, err)
		}
	}
}
