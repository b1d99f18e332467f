package trace

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
)

// TestObjectUpToDate: the embedded objects are bpf/trace.bpf.c and
// bpf/drops.bpf.c compiled (run `go generate ./ebpfManager/trace` after
// changing the C).
func TestObjectUpToDate(t *testing.T) {
	t.Run("trace", func(t *testing.T) { checkObject(t, "bpf/trace.bpf.c", object) })
	t.Run("drops", func(t *testing.T) { checkObject(t, "bpf/drops.bpf.c", dropsObject) })
}

func checkObject(t *testing.T, src string, object []byte) {
	out := filepath.Join(t.TempDir(), "object.o")
	cmd := exec.Command("clang", "-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", src, "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clang: %v\n%s", err, b)
	}
	fresh, err := ebpf.LoadCollectionSpec(out)
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(object))
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh.Programs) != len(embedded.Programs) {
		t.Fatalf("%d programs compiled, %d embedded: run go generate", len(fresh.Programs), len(embedded.Programs))
	}
	for name, p := range fresh.Programs {
		e := embedded.Programs[name]
		if e == nil || p.Instructions.String() != e.Instructions.String() {
			t.Fatalf("program %s differs from the embedded object: run go generate ./ebpfManager/trace", name)
		}
	}
	for name := range fresh.Maps {
		if embedded.Maps[name] == nil {
			t.Fatalf("map %s is not in the embedded object: run go generate", name)
		}
	}
	_ = os.Remove(out)
}
