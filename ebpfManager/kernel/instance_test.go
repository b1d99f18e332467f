package kernel

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/test/bpftest"
)

// TestLoadSetsInstance: Load sets the object's nm_instance (bpf/reasons.h)
// to LoadOptions.Instance, so nm_drop leaves it in cb[2]; a restart that
// reuses the pinned maps (persist) sets it again, to its own value, while the
// other maps are the earlier run's. .rodata is neither pinned (bpffs refuses
// the dot) nor handed to the control plane.
func TestLoadSetsInstance(t *testing.T) {
	bpftest.RequireRoot(t)
	obj := bpftest.Compile(t, filepath.Join(bpftest.RepoRoot(t), "bpf", "testdata", "reasonstest.bpf.c"))
	pins := pinRoot(t)
	k, _ := New("tcx")
	frame := make([]byte, 64)
	binary.LittleEndian.PutUint32(frame, 1)
	binary.LittleEndian.PutUint32(frame[4:], 5)
	run := func(dp ebpfmanager.DataPlane) bpftest.SkbCtx {
		_, _, ctx := bpftest.RunCtx(t, nil, dp.SDK().Programs["drop"], frame, bpftest.SkbCtx{})
		return ctx
	}
	dp, err := k.Load(ebpfmanager.LoadOptions{Object: obj, PinDir: pins, Instance: 9})
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := run(dp).Instance(); !ok || id != 9 {
		t.Fatalf("cb instance %d (%v), want 9", id, ok)
	}
	if _, ok := dp.SDK().Maps[".rodata"]; ok {
		t.Fatal(".rodata handed to the control plane")
	}
	if err := dp.Release(); err != nil {
		t.Fatal(err)
	}
	dp2, err := k.Load(ebpfmanager.LoadOptions{Object: obj, PinDir: pins, Reuse: true, Instance: 11})
	if err != nil {
		t.Fatal(err)
	}
	defer dp2.Close()
	if id, ok := run(dp2).Instance(); !ok || id != 11 || !dp2.Reused() {
		t.Fatalf("after a reload on reused maps: cb instance %d (%v), reused %v; want 11", id, ok, dp2.Reused())
	}
	var per []uint64
	if err := dp2.SDK().Maps["nm_drops"].Lookup(uint32(1), &per); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	if n != 2 {
		t.Fatalf("nm_drops[1] = %d after a drop in each run, want 2 (the map reused)", n)
	}
	if err := dp2.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if ents, _ := os.ReadDir(pins); len(ents) != 0 {
		t.Fatalf("pins left after close: %v", ents)
	}
}
