package main

import (
	"testing"

	"github.com/cilium/ebpf"

	"github.com/oakestra/netmanager/test/bpftest"
)

// scan sees every entry once over several batches; deleteKeys deletes the
// keys asked for, skipping those already gone, and nothing else.
func TestScanAndDeleteKeys(t *testing.T) {
	bpftest.RequireRoot(t)
	const n = 3*scanBatch + 17
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.LRUHash, KeySize: 4, ValueSize: 4, MaxEntries: 2 * n})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for i := range uint32(n) {
		if err := m.Put(i, i*7); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint32]int{}
	if err := scan(m, func(k, v uint32) {
		if v != k*7 {
			t.Fatalf("entry %d holds %d", k, v)
		}
		seen[k]++
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("scan saw %d of %d entries", len(seen), n)
	}
	var drop []uint32
	for i := uint32(0); i < n; i += 2 {
		drop = append(drop, i)
	}
	for _, k := range []uint32{0, 2, 4000, n - 1} { // gone before the delete (n-1 is even)
		if err := m.Delete(k); err != nil {
			t.Fatal(err)
		}
	}
	if err := deleteKeys(m, drop); err != nil {
		t.Fatal(err)
	}
	left := 0
	if err := scan(m, func(k, _ uint32) {
		if k%2 == 0 {
			t.Errorf("key %d was not deleted", k)
		}
		left++
	}); err != nil {
		t.Fatal(err)
	}
	if left != n/2 {
		t.Fatalf("%d entries left, want %d", left, n/2)
	}
}
