package kernels

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// tally runs scripts/kernels/tally.sh with args and stdin.
func tally(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "kernels", "tally.sh")
	cmd := exec.Command(script, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tally.sh %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// count counts go test -v results, subtests included, and nothing else.
func TestTallyCount(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "a.out")
	log := "=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestB\n    --- PASS: TestB/x (0.00s)\n    --- FAIL: TestB/y (0.00s)\n" +
		"--- FAIL: TestB (0.00s)\n--- SKIP: TestC (0.00s)\n    x_test.go:3: --- PASS: quoted in a message\nFAIL\n"
	if err := os.WriteFile(out, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(tally(t, "", "count", out, filepath.Join(dir, "missing.out"))); got != "2 2 1" {
		t.Fatalf("count: %q, want \"2 2 1\"", got)
	}
}

// relabel keeps gotest.sh's output but its closing line, which it saves;
// total sums the parts, counts a part that never reported as a failure,
// and ends with the one closing line.
func TestTallyRelabelAndTotal(t *testing.T) {
	dir := t.TempDir()
	gotest, kernels := filepath.Join(dir, "gotest"), filepath.Join(dir, "kernels")
	out := tally(t, "ok  \tpkg\t1.0s\ntests: 10 passed, 1 failed, 2 skipped\n", "relabel", gotest)
	if strings.Contains(out, "\ntests: ") || strings.HasPrefix(out, "tests: ") || !strings.HasPrefix(out, "ok  \tpkg") {
		t.Fatalf("relabel output:\n%s", out)
	}
	if err := os.WriteFile(kernels, []byte("30 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = tally(t, "", "total", "go test="+gotest, "kernel matrix="+kernels, "fuzz="+filepath.Join(dir, "none"))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if last := lines[len(lines)-1]; last != "tests: 40 passed, 2 failed, 2 skipped" {
		t.Fatalf("closing line %q\n%s", last, out)
	}
	if strings.Count(out, "tests: ") != 1 || !strings.Contains(out, "fuzz: did not report") {
		t.Fatalf("total output:\n%s", out)
	}
}
