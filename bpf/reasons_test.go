package bpf

import (
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/oakestra/netmanager/test/bpftest"
)

// skbCB mirrors struct __sk_buff up to hwtstamp (192 bytes) with only its
// control block, cb[5] at offset 48, named.
type skbCB struct {
	_  [48]byte
	CB [5]uint32
	_  [124]byte
}

// Mirrors of reasons.h.
const (
	reasonMagic = 0x4e4d5200
	reasonsMax  = 64
	instance    = 77
)

// nm_drop returns NM_DROP, writes NM_REASON_MAGIC|reason into cb[3], the
// detail into cb[4] and nm_instance (a const volatile the loader sets, here
// 77) into cb[2] (cb[0..1] untouched), and counts the drop in nm_drops under
// the reason (a reason above 63 is masked to its low six bits).
func TestNmDrop(t *testing.T) {
	bpftest.RequireRoot(t)
	spec, err := ebpf.LoadCollectionSpec(bpftest.Compile(t, "testdata/reasonstest.bpf.c"))
	if err != nil {
		t.Fatal(err)
	}
	v := spec.Variables["nm_instance"]
	if v == nil || !v.Constant() || v.Size() != 4 {
		t.Fatalf("nm_instance: %v, want a 4-byte constant (.rodata)", v)
	}
	if err := v.Set(uint32(instance)); err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	prog, drops := coll.Programs["drop"], coll.Maps["nm_drops"]
	if drops == nil || drops.Type() != ebpf.PerCPUArray || drops.MaxEntries() != reasonsMax {
		t.Fatalf("nm_drops: %v, want a per-CPU array of %d", drops, reasonsMax)
	}
	want := map[uint32]uint64{}
	for _, c := range []struct {
		reason, detail, key uint32
		runs                int
	}{
		{1, 7, 1, 1},
		{2, 0, 2, 3},
		{63, 0xffffffff, 63, 2},
		{0, 42, 0, 1},
		{65, 9, 1, 1}, // masked into reason 1
	} {
		frame := make([]byte, 64)
		binary.LittleEndian.PutUint32(frame, c.reason)
		binary.LittleEndian.PutUint32(frame[4:], c.detail)
		for range c.runs {
			in := skbCB{CB: [5]uint32{11, 12, 13, 0xdeadbeef, 0xdeadbeef}}
			var out skbCB
			opts := &ebpf.RunOptions{Data: frame, Context: in, ContextOut: &out}
			ret, err := prog.Run(opts)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if v := int32(ret); v != 2 {
				t.Fatalf("reason %d: verdict %s, want SHOT", c.reason, bpftest.Verdict(v))
			}
			wantCB := [5]uint32{11, 12, instance, reasonMagic | c.key, c.detail}
			if out.CB != wantCB {
				t.Fatalf("reason %d detail %d: cb %#x, want %#x", c.reason, c.detail, out.CB, wantCB)
			}
		}
		want[c.key] += uint64(c.runs)
	}
	for key := uint32(0); key < reasonsMax; key++ {
		var per []uint64
		if err := drops.Lookup(key, &per); err != nil {
			t.Fatal(err)
		}
		var sum uint64
		for _, n := range per {
			sum += n
		}
		if sum != want[key] {
			t.Errorf("nm_drops[%d] = %d, want %d", key, sum, want[key])
		}
	}
}
