// Package bpftest helps data-plane tests: find or compile eBPF objects, load
// them, craft frames with gopacket and run programs through BPF_PROG_TEST_RUN.
// It fails tests that cannot run (no root, no clang); it never skips.
package bpftest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/rlimit"
)

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root not found")
		}
		dir = parent
	}
}

// RequireRoot fails the test unless it runs as root with a usable BPF syscall.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("data-plane tests need root (BPF_PROG_TEST_RUN); run `make test` as root")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatalf("remove memlock limit: %v", err)
	}
}

// ModuleObject returns build/<dir>/<name>/<name>.o, failing if `make build` has
// not produced it.
func ModuleObject(t testing.TB, dir, name string) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), "build", dir, name, name+".o")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run `make build` first (%v)", p, err)
	}
	return p
}

// Compile builds a C data plane into a temporary object with the project's
// flags and returns its path.
func Compile(t testing.TB, src string) string {
	t.Helper()
	root := RepoRoot(t)
	out := filepath.Join(t.TempDir(), filepath.Base(src)+".o")
	args := []string{"-O2", "-g", "-Wall", "-Werror", "-target", "bpf",
		"-I" + filepath.Join(root, "bpf"), "-I/usr/include/x86_64-linux-gnu", "-c", src, "-o", out}
	if b, err := exec.Command("clang", args...).CombinedOutput(); err != nil {
		t.Fatalf("clang %s: %v\n%s", src, err, b)
	}
	return out
}

// Load loads every program and map of an object file.
func Load(t testing.TB, path string) *ebpf.Collection {
	t.Helper()
	spec, err := ebpf.LoadCollectionSpec(path)
	if err != nil {
		t.Fatalf("load spec %s: %v", path, err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Fatalf("verifier rejected %s: %+v", path, ve)
		}
		t.Fatalf("load %s: %v", path, err)
	}
	t.Cleanup(coll.Close)
	return coll
}

// Run runs prog once on frame and returns the verdict and the output frame.
func Run(t testing.TB, prog *ebpf.Program, frame []byte) (int32, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	opts := &ebpf.RunOptions{Data: frame, DataOut: out}
	ret, err := prog.Run(opts)
	if err != nil {
		t.Fatalf("run %s: %v", prog, err)
	}
	return int32(ret), opts.DataOut
}

// Verdict names a TC verdict for messages.
func Verdict(v int32) string {
	switch v {
	case -1:
		return "NEXT(TC_ACT_UNSPEC)"
	case 0:
		return "OK"
	case 2:
		return "SHOT"
	case 7:
		return "REDIRECT"
	default:
		return fmt.Sprintf("verdict(%d)", v)
	}
}

// LoadSized loads a built module's object (build/<dir>/<name>/<name>.o)
// with the map sizes its MapSizes gave, as the eBPF Manager does; the
// collection is closed when the test ends.
func LoadSized(t testing.TB, dir, name string, sizes map[string]uint32) *ebpf.Collection {
	t.Helper()
	spec, err := ebpf.LoadCollectionSpec(ModuleObject(t, dir, name))
	if err != nil {
		t.Fatal(err)
	}
	for m, n := range sizes {
		ms, ok := spec.Maps[m]
		if !ok {
			t.Fatalf("%s has no map %q to size", name, m)
		}
		ms.MaxEntries = n
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(coll.Close)
	return coll
}

// SkbCtx mirrors struct __sk_buff up to hwtstamp (192 bytes) with the
// fields BPF_PROG_TEST_RUN lets a test set that the tests use: the
// interface the packet arrived on (one in the namespace the run is in), the
// control block (RunCtx reads it back) and, for a GSO packet, its segment
// count and size.
type SkbCtx struct {
	_       [40]byte
	Ifindex uint32
	_       [4]byte
	CB      [5]uint32 // the control block; bpf/reasons.h writes cb[3] and cb[4]
	_       [96]byte
	GSOSegs uint32
	_       [8]byte
	GSOSize uint32
	_       [12]byte
}

// RunIn runs prog once on frame with ctx through do, which runs it on a
// thread in a network namespace (nstest.Netns.Do): routes, neighbours and
// interfaces are that namespace's. It returns the verdict and the output.
func RunIn(t testing.TB, do func(func() error) error, prog *ebpf.Program, frame []byte, ctx SkbCtx) (int32, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	opts := &ebpf.RunOptions{Data: frame, DataOut: out, Context: ctx}
	var ret uint32
	err := do(func() (err error) {
		ret, err = prog.Run(opts)
		return err
	})
	if err != nil {
		t.Fatalf("run %s: %v", prog, err)
	}
	return int32(ret), opts.DataOut
}

// Noop loads a TC program that only returns "next": the cost of the test-run
// harness itself, quoted beside a data plane's. It is closed with the test.
func Noop(t testing.TB) *ebpf.Program {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()}})
	if err != nil {
		t.Fatalf("load a no-op program: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}
