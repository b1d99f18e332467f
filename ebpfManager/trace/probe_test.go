package trace

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// refused says whether this kernel refuses tracing programs (the probe); if
// it does, it checks the refusal on p: Start fails with the exact error and
// leaves nothing (no session, no tracing link on p, no map or program of
// this process more than before). A probe that could not tell fails the test.
func refused(t testing.TB, p *ebpf.Program) bool {
	t.Helper()
	err := Supported()
	if err == nil {
		return false
	}
	var ue *UnsupportedError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUnsupported) {
		t.Fatalf("the tracing probe could not tell: %v", err)
	}
	if ue.Arch != "" {
		return refusedArch(t, p, err)
	}
	if k := ue.Kernel.Error(); !strings.HasPrefix(k, "fexit program: ") && !strings.HasPrefix(k, "attach the fexit program: ") {
		t.Fatalf("the refusal's kernel error %q names neither the fexit program's load nor its attach", k)
	}
	if want := refusalFor(ue.Kernel); err.Error() != want {
		t.Fatalf("refusal %q, want %q", err, want)
	}
	before := bpfFDs(t)
	s, err := Start(Filter{})
	if s != nil || err == nil || err.Error() != refusalFor(ue.Kernel) {
		t.Fatalf("Start on a kernel that refuses tracing: session %v, error %v; want none and %q", s, err, refusalFor(ue.Kernel))
	}
	if n, err := LinksTo(progID(t, p)); err != nil || n != 0 {
		t.Fatalf("after the refusal: %d tracing links to the program (%v), want none", n, err)
	}
	if after := bpfFDs(t); !maps.Equal(after, before) {
		t.Fatalf("after the refusal the process holds %v, before %v", after, before)
	}
	t.Logf("this kernel refuses tracing, as it should be refused: %v", err)
	return true
}

// refusedArch checks an architecture's refusal (archRefusal) as refused
// checks the kernel's: Start fails with it and leaves nothing.
func refusedArch(t testing.TB, p *ebpf.Program, want error) bool {
	t.Helper()
	if want.Error() != archRefusal(runtime.GOARCH).Error() {
		t.Fatalf("refusal %q, want %q", want, archRefusal(runtime.GOARCH))
	}
	before := bpfFDs(t)
	s, err := Start(Filter{})
	if s != nil || err == nil || err.Error() != want.Error() {
		t.Fatalf("Start on a refused architecture: session %v, error %v; want none and %q", s, err, want)
	}
	if n, err := LinksTo(progID(t, p)); err != nil || n != 0 {
		t.Fatalf("after the refusal: %d tracing links to the program (%v), want none", n, err)
	}
	if after := bpfFDs(t); !maps.Equal(after, before) {
		t.Fatalf("after the refusal the process holds %v, before %v", after, before)
	}
	t.Logf("tracing is refused on this architecture, as it should be: %v", want)
	return true
}

// TestArchRefusal: arm64 is refused, by a 422-class error naming why;
// amd64 is left to the kernel's probe.
func TestArchRefusal(t *testing.T) {
	err := archRefusal("arm64")
	var ue *UnsupportedError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUnsupported) || ue.Arch != "arm64" ||
		!strings.HasPrefix(err.Error(), "tracing is refused on arm64: Debian's arm64 6.12 kernel panicked") {
		t.Fatalf("arm64: %v", err)
	}
	if err := archRefusal("amd64"); err != nil {
		t.Fatalf("amd64: %v", err)
	}
}

func refusalFor(kernel error) string {
	return "tracing needs BPF trampolines (fentry/fexit on BPF programs), which this kernel refuses: " + kernel.Error() +
		"; traces work on Debian's 6.1 and later kernels"
}

// bpfFDs counts the process's open BPF objects by kind (bpf-map, bpf-prog,
// bpf_link).
func bpfFDs(t testing.TB) map[string]int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && len(l) > len("anon_inode:") && l[:len("anon_inode:")] == "anon_inode:" {
			out[l[len("anon_inode:"):]]++
		}
	}
	return out
}

// TestSupported: the probe answers conclusively and Start agrees with it:
// where tracing works, a session attaches to a program; where the kernel
// refuses it (this sandbox's 6.18.44-fc: the fexit program's load is EPERM),
// Start refuses with the probe's error and leaves nothing.
func TestSupported(t *testing.T) {
	p := dropper(t)
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	if rel := unix.ByteSliceToString(u.Release[:]); strings.HasPrefix(rel, "6.18.44-fc") {
		want := refusalFor(errors.New("fexit program: load program: operation not permitted"))
		if err := Supported(); err == nil || err.Error() != want {
			t.Fatalf("on %s the probe answers %v, want %q", rel, err, want)
		}
	}
	if refused(t, p) {
		return
	}
	s := start(t, Filter{}, p)
	if s.Attached() != 1 {
		t.Fatalf("%d targets attached, want 1", s.Attached())
	}
	if again := Supported(); again != nil {
		t.Fatalf("the probe changed its answer: %v", again)
	}
}
