package bpf

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/oakestra/netmanager/test/bpftest"
)

// lowest_bit and popcount64 (bits.h) agree with Go's math/bits on zero, on
// every single bit, on every word with its top or bottom bits set, and on
// random words; lowest_bit of zero is 64.
func TestBits(t *testing.T) {
	bpftest.RequireRoot(t)
	prog := bpftest.Load(t, bpftest.Compile(t, "testdata/bitstest.bpf.c")).Programs["bits"]
	xs := []uint64{0, ^uint64(0), 0x8000000000000001}
	for i := range 64 {
		xs = append(xs, uint64(1)<<i, ^uint64(0)<<i, ^uint64(0)>>i)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		xs = append(xs, r.Uint64()&r.Uint64()&r.Uint64())
	}
	for _, x := range xs {
		frame := make([]byte, 64)
		binary.LittleEndian.PutUint64(frame, x)
		v, out := bpftest.Run(t, prog, frame)
		if v != -1 {
			t.Fatalf("%#x: verdict %s", x, bpftest.Verdict(v))
		}
		low, pop := binary.LittleEndian.Uint32(out[8:]), binary.LittleEndian.Uint32(out[12:])
		if want := uint32(bits.TrailingZeros64(x)); low != want {
			t.Errorf("lowest_bit(%#x) = %d, want %d", x, low, want)
		}
		if want := uint32(bits.OnesCount64(x)); pop != want {
			t.Errorf("popcount64(%#x) = %d, want %d", x, pop, want)
		}
	}
}
