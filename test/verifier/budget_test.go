package verifier

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/oakestra/netmanager/test/bpftest"
)

// Budget is the most processed instructions a program may take: 10 % of the
// kernel's limit (BPF_COMPLEXITY_LIMIT_INSNS, 1,000,000), so that a program
// keeps room for the next kernel's verifier.
const Budget = 100_000

// refused lists the objects built to be refused by the verifier (they test
// the eBPF Manager's error path) and so have no budget.
var refused = map[string]bool{"badverifier": true}

// Count is one program's processed-instruction count on one kernel: a line
// of VERIFIER_OUT.
type Count struct {
	Kernel  string `json:"kernel"`
	Object  string `json:"object"`
	Program string `json:"program"`
	Insns   int    `json:"insns"`
	Error   string `json:"error,omitempty"`
}

// objects returns every object the project ships or tests with, by name:
// build/modules/<m>/<m>.o, build/test-modules/<m>/<m>.o (but the refused
// ones) and the bpf/ test programs, compiled here.
func objects(t *testing.T) map[string]string {
	root := bpftest.RepoRoot(t)
	out := map[string]string{}
	for _, dir := range []string{"modules", "test-modules"} {
		srcDir := dir
		if dir == "test-modules" {
			srcDir = "test/modules"
		}
		srcs, err := filepath.Glob(filepath.Join(root, srcDir, "*", "*.bpf.c"))
		if err != nil || len(srcs) == 0 {
			t.Fatalf("no data planes under %s (%v)", srcDir, err)
		}
		for _, src := range srcs {
			name := filepath.Base(filepath.Dir(src))
			if refused[name] {
				continue
			}
			out[dir+"/"+name] = bpftest.ModuleObject(t, dir, name)
		}
	}
	srcs, _ := filepath.Glob(filepath.Join(root, "bpf", "testdata", "*.bpf.c"))
	if len(srcs) == 0 {
		t.Fatal("no test programs under bpf/testdata")
	}
	for _, src := range srcs {
		out["bpf/"+strings.TrimSuffix(filepath.Base(src), ".bpf.c")] = bpftest.Compile(t, src)
	}
	return out
}

// TestVerifierBudget loads every program and fails for each one that the
// verifier refuses or that takes more than Budget processed instructions,
// naming the program and the count.
func TestVerifierBudget(t *testing.T) {
	bpftest.RequireRoot(t)
	objs := objects(t)
	names := make([]string, 0, len(objs))
	for n := range objs {
		names = append(names, n)
	}
	sort.Strings(names)
	var counts []Count
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			cs := measure(t, objs[name])
			for _, c := range cs {
				c.Object = name
				counts = append(counts, c)
				switch {
				case c.Error != "":
					t.Errorf("%s %s: refused (%d processed instructions): %s", name, c.Program, c.Insns, c.Error)
				case c.Insns > Budget:
					t.Errorf("%s %s: %d processed instructions, over the budget of %d", name, c.Program, c.Insns, Budget)
				default:
					t.Logf("%s %s: %d processed instructions", name, c.Program, c.Insns)
				}
			}
		})
	}
	if out := os.Getenv("VERIFIER_OUT"); out != "" {
		if err := write(out, counts); err != nil {
			t.Fatal(err)
		}
	}
}

// measure loads each program of the object at path on its own and returns
// its processed-instruction count (from the verifier's log where it was
// refused).
func measure(t *testing.T, path string) []Count {
	spec, err := ebpf.LoadCollectionSpec(path)
	if err != nil {
		t.Fatalf("load spec %s: %v", path, err)
	}
	progs := make([]string, 0, len(spec.Programs))
	for n := range spec.Programs {
		progs = append(progs, n)
	}
	sort.Strings(progs)
	var out []Count
	for _, p := range progs {
		one := spec.Copy()
		for n := range one.Programs {
			if n != p {
				delete(one.Programs, n)
			}
		}
		out = append(out, loadOne(one, p))
	}
	return out
}

var processed = regexp.MustCompile(`processed (\d+) insns`)

// loadOne loads the collection holding the one program p and reads the
// count the kernel kept for it.
func loadOne(spec *ebpf.CollectionSpec, p string) Count {
	c := Count{Program: p}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats}})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			for _, l := range ve.Log {
				if m := processed.FindStringSubmatch(l); m != nil {
					c.Insns, _ = strconv.Atoi(m[1])
				}
			}
			if n := len(ve.Log); n > 0 {
				err = fmt.Errorf("%w (%s)", ve.Cause, strings.Join(ve.Log[max(0, n-3):], " | "))
			}
		}
		c.Error = err.Error()
		return c
	}
	defer coll.Close()
	info, err := coll.Programs[p].Info()
	if err != nil {
		c.Error = fmt.Sprintf("program info: %v", err)
		return c
	}
	n, ok := info.VerifiedInstructions()
	if !ok {
		c.Error = "the kernel does not report processed instructions"
		return c
	}
	c.Insns = int(n)
	return c
}

// write appends counts to the file at path as JSON lines, each with this
// kernel's release.
func write(path string, counts []Count) error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return err
	}
	release := unix.ByteSliceToString(u.Release[:])
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("VERIFIER_OUT: %w", err)
	}
	enc := json.NewEncoder(f)
	for _, c := range counts {
		c.Kernel = release
		if err := enc.Encode(c); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
