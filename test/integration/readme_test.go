package integration

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/oakestra/netmanager/test/nstest"
)

// readmeExample returns the README's worked example, fences stripped.
func readmeExample(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	start := strings.Index(s, "<!-- example:two-services -->")
	end := strings.Index(s, "<!-- /example -->")
	if start < 0 || end < start {
		t.Fatal("README has no example:two-services block")
	}
	block := s[start:end]
	block = block[strings.Index(block, "```sh")+len("```sh"):]
	return block[:strings.LastIndex(block, "```")]
}

// The README's worked example runs as written against a NetManager listening
// on 127.0.0.1:6000 — inside a node namespace, with its demo namespaces renamed
// to unique names so parallel runs cannot clash.
func TestReadmeExample(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	a, b := nstest.UniqueName("demo-a"), nstest.UniqueName("demo-b")
	t.Cleanup(func() { nstest.DeleteNetns(t, a); nstest.DeleteNetns(t, b) })
	script := strings.NewReplacer("demo-a", a, "demo-b", b).Replace(readmeExample(t))
	cmd := exec.Command("nsenter", "--net="+n.ns.Path(), "bash", "-euo", "pipefail", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.Cleanup(func() {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the script's own process group
		}
	})
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README example failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"nsAddress":"10.18.0.2"`, `"nsAddress":"10.18.0.3"`, `"portMappings":[{"hostPort":8080`, "3 received", "fd00:18::3", `"name":"packetcounter"`, `"packets":`, `"state":"deleted"`} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("README example output lacks %q:\n%s", want, out)
		}
	}
	n.assertState(t, n.ready, "after the README example")
	n.stop(t)
}
