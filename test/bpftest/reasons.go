package bpftest

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// Mirrors of bpf/reasons.h (TestNmDrop in bpf/ checks the ABI itself).
const (
	ReasonMagic = 0x4e4d5200
	ReasonMask  = 0xffffff00
	ReasonsMax  = 64
	DropsMap    = "nm_drops"
	InstanceCB  = 2 // cb[] index of nm_instance
)

// RunCtx runs prog once on frame with ctx, through do when it is not nil
// (a network namespace's thread, as RunIn), and returns the verdict, the
// output frame and the context as the program left it.
func RunCtx(t testing.TB, do func(func() error) error, prog *ebpf.Program, frame []byte, ctx SkbCtx) (int32, []byte, SkbCtx) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	var after SkbCtx
	opts := &ebpf.RunOptions{Data: frame, DataOut: out, Context: ctx, ContextOut: &after}
	if do == nil {
		do = func(f func() error) error { return f() }
	}
	var ret uint32
	err := do(func() (err error) {
		ret, err = prog.Run(opts)
		return err
	})
	if err != nil {
		t.Fatalf("run %s: %v", prog, err)
	}
	return int32(ret), opts.DataOut, after
}

// Reason is the drop reason and detail nm_drop left in the control block;
// ok is false when cb[3] does not hold NM_REASON_MAGIC.
func (c SkbCtx) Reason() (reason, detail uint32, ok bool) {
	if c.CB[3]&ReasonMask != ReasonMagic {
		return 0, 0, false
	}
	return c.CB[3] &^ ReasonMask, c.CB[4], true
}

// Instance is the nm_instance nm_drop left in the control block (cb[2]; 0
// for a data plane loaded without the loader setting it); ok as for Reason.
func (c SkbCtx) Instance() (id uint32, ok bool) {
	if c.CB[3]&ReasonMask != ReasonMagic {
		return 0, false
	}
	return c.CB[InstanceCB], true
}

// Drops sums a data plane's nm_drops over the CPUs: the non-zero counts by
// reason code.
func Drops(t testing.TB, coll *ebpf.Collection) map[uint32]uint64 {
	t.Helper()
	m := coll.Maps[DropsMap]
	if m == nil {
		t.Fatalf("the data plane has no %s map", DropsMap)
	}
	out := map[uint32]uint64{}
	for k := uint32(0); k < m.MaxEntries(); k++ {
		var per []uint64
		if err := m.Lookup(k, &per); err != nil {
			t.Fatalf("read %s[%d]: %v", DropsMap, k, err)
		}
		for _, n := range per {
			out[k] += n
		}
		if out[k] == 0 {
			delete(out, k)
		}
	}
	return out
}

var defineRE = regexp.MustCompile(`^#define\s+(\w+)\s+\(?\s*(\d+)\s*\)?`)

// Defines returns the numeric #defines of a C header whose names start with
// prefix.
func Defines(t testing.TB, header, prefix string) map[string]uint32 {
	t.Helper()
	f, err := os.Open(header)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]uint32{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := defineRE.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil || !strings.HasPrefix(m[1], prefix) {
			continue
		}
		n, err := strconv.ParseUint(m[2], 10, 32)
		if err != nil {
			t.Fatalf("%s: %s: %v", header, m[1], err)
		}
		out[m[1]] = uint32(n)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var reasonNameRE = regexp.MustCompile(`^[a-z0-9]+( [a-z0-9]+)*$`)

// CheckDropReasons checks a module's Go table of drop reasons against its C
// header: macros (C name -> code, as the Go side mirrors them) are exactly
// the header's #defines starting with prefix, every code is within 1..63 and
// used once, and names (what DropReasons answers) names exactly those codes
// with short lower-case words; and the drop-reasons table of the README
// beside the header lists exactly those names and codes.
func CheckDropReasons(t testing.TB, header, prefix string, macros map[string]uint32, names map[uint32]string) {
	t.Helper()
	checkReasonsTable(t, filepath.Join(filepath.Dir(header), "README.md"), names)
	c := Defines(t, header, prefix)
	if len(c) == 0 {
		t.Fatalf("%s has no %s* reason codes", header, prefix)
	}
	for n, code := range c {
		if g, ok := macros[n]; !ok || g != code {
			t.Errorf("%s: %s is %d in C, %d (present %v) in Go", header, n, code, g, ok)
		}
	}
	seen := map[uint32]string{}
	for n, code := range macros {
		if _, ok := c[n]; !ok {
			t.Errorf("Go mirrors %s = %d, which %s does not define", n, code, header)
		}
		if code < 1 || code >= ReasonsMax {
			t.Errorf("%s = %d is not within 1..%d", n, code, ReasonsMax-1)
		}
		if other, dup := seen[code]; dup {
			t.Errorf("%s and %s are both %d", n, other, code)
		}
		seen[code] = n
		if !reasonNameRE.MatchString(names[code]) || len(names[code]) > 24 {
			t.Errorf("%s (%d) is named %q: want short lower-case words", n, code, names[code])
		}
	}
	for code := range names {
		if _, ok := seen[code]; !ok {
			t.Errorf("DropReasons names code %d (%q), which no %s* macro is", code, names[code], prefix)
		}
	}
}

// reasonRow is a row of a README's drop-reasons table: | `name` | code | ...
var reasonRow = regexp.MustCompile("(?m)^\\| `([a-z0-9 ]+)` \\| ([0-9]+) \\|")

// checkReasonsTable holds a module README's drop-reasons table to names.
func checkReasonsTable(t testing.TB, readme string, names map[uint32]string) {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	doc := map[uint32]string{}
	for _, m := range reasonRow.FindAllStringSubmatch(string(b), -1) {
		code, _ := strconv.ParseUint(m[2], 10, 32)
		doc[uint32(code)] = m[1]
	}
	for code, n := range names {
		if doc[code] != n {
			t.Errorf("%s: reason %d is %q in its table, DropReasons names it %q", readme, code, doc[code], n)
		}
	}
	for code, n := range doc {
		if _, ok := names[code]; !ok {
			t.Errorf("%s lists reason %d (%q), which DropReasons does not name", readme, code, n)
		}
	}
}
