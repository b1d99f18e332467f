package kernels

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// tally runs scripts/kernels/tally.sh with args and stdin and returns its
// output and exit status.
func tally(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "kernels", "tally.sh")
	cmd := exec.Command(script, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("tally.sh %v: %v\n%s", args, err, out)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// count counts go test -v results, subtests included, and nothing else.
func TestTallyCount(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "a.out")
	write(t, out, "=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestB\n    --- PASS: TestB/x (0.00s)\n    --- FAIL: TestB/y (0.00s)\n"+
		"--- FAIL: TestB (0.00s)\n--- SKIP: TestC (0.00s)\n    x_test.go:3: --- PASS: quoted in a message\nFAIL\n")
	if got, _ := tally(t, "", "count", out, filepath.Join(dir, "missing.out")); strings.TrimSpace(got) != "2 2 1" {
		t.Fatalf("count: %q, want \"2 2 1\"", got)
	}
}

// relabel keeps gotest.sh's output but its closing line, which it saves;
// fuzz counts targets; total sums the parts, counts a part that never
// reported or exited non-zero without a failure as one failure, ends with
// the one closing line and fails when anything failed.
func TestTallyRelabelFuzzAndTotal(t *testing.T) {
	dir := t.TempDir()
	gotest, fuzz, kernels := filepath.Join(dir, "gotest"), filepath.Join(dir, "fuzz"), filepath.Join(dir, "kernels")
	out, _ := tally(t, "ok  \tpkg\t1.0s\ntests: 10 passed, 1 failed, 2 skipped\n", "relabel", gotest)
	if strings.Contains(out, "\ntests: ") || strings.HasPrefix(out, "tests: ") || !strings.HasPrefix(out, "ok  \tpkg") {
		t.Fatalf("relabel output:\n%s", out)
	}
	out, _ = tally(t, "fuzz FuzzA (./a) for 3s\nok  \tx/a\t3.0s\nfuzz FuzzB (./b) for 3s\nok  \tx/b\t3.0s\n", "fuzz", fuzz)
	if !strings.Contains(out, "fuzz FuzzB") {
		t.Fatalf("fuzz output:\n%s", out)
	}
	write(t, kernels, "30 0 0\n")
	write(t, kernels+".rc", "0\n")
	out, rc := tally(t, "", "total", "go test="+gotest, "fuzz="+fuzz, "kernel matrix="+kernels)
	if last := lastLine(out); last != "tests: 42 passed, 1 failed, 2 skipped" || rc != 1 {
		t.Fatalf("closing line %q, exit %d\n%s", last, rc, out)
	}
	write(t, gotest, "10 0 0\n")
	if out, rc = tally(t, "", "total", "go test="+gotest, "kernel matrix="+kernels); lastLine(out) != "tests: 40 passed, 0 failed, 0 skipped" || rc != 0 {
		t.Fatalf("all passed: %q, exit %d", lastLine(out), rc)
	}
	write(t, kernels+".rc", "1\n") // e.g. a guest that never booted reported nothing failed
	out, rc = tally(t, "", "total", "go test="+gotest, "kernel matrix="+kernels, "fuzz="+filepath.Join(dir, "none"))
	if lastLine(out) != "tests: 40 passed, 2 failed, 0 skipped" || rc != 1 || strings.Count(out, "tests: ") != 1 || !strings.Contains(out, "fuzz: did not report") {
		t.Fatalf("failures without counts:\n%s", out)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
