package main

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// scanBatch is how many entries scan reads and deleteKeys deletes per
// system call. A hash map's lookup batch must hold a whole bucket; its
// buckets hold a few entries.
const scanBatch = 4096

// scan calls fn for every entry of a hash map, read in batches
// (BPF_MAP_LOOKUP_BATCH): one system call per scanBatch entries where
// Map.Iterate makes two per entry. The session tables hold two entries per
// flow, two million at a million flows: entry by entry that walk takes
// about 7 s, in batches under 1 s. An entry that changes meanwhile (an LRU
// map evicts) may be missed or seen twice; the walk never restarts.
func scan[K, V any](m *ebpf.Map, fn func(K, V)) error {
	keys, vals := make([]K, scanBatch), make([]V, scanBatch)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := range n {
			fn(keys[i], vals[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil // the end
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", m, err)
		}
	}
}

// deleteKeys deletes keys from a hash map in batches (BPF_MAP_DELETE_BATCH);
// a key already gone (an LRU map evicted it) is skipped.
func deleteKeys[K any](m *ebpf.Map, keys []K) error {
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), scanBatch)]
		n, err := m.BatchDelete(chunk, nil)
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			n++ // the batch stopped at the missing key: skip it
		case err != nil:
			return fmt.Errorf("delete from %s: %w", m, err)
		}
		keys = keys[n:]
	}
	return nil
}
