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

// firstShellBlock returns the first ```sh block of a markdown file.
func firstShellBlock(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	start := strings.Index(s, "```sh\n")
	if start < 0 {
		t.Fatalf("%s has no sh block", path)
	}
	s = s[start+len("```sh\n"):]
	return s[:strings.Index(s, "```")]
}

// The modules' README examples run as written against a NetManager on
// 127.0.0.1:6000 (inside a node namespace).
func TestModuleReadmeExamples(t *testing.T) {
	for _, c := range []struct {
		readme string
		want   []string
	}{
		{"../../modules/packetcounter/README.md", []string{`"name":"packetcounter"`, `{}`, `"state":"deleted"`}},
		{"../../modules/firewall/README.md", []string{`"name":"firewall"`, `"id":"noping"`, `"hits":0`, `"state":"deleted"`, `{}`}},
		{"../../modules/proxy/README.md", []string{`"name":"proxy"`, `"newSessions":0`, `"state":"deleted"`}},
	} {
		t.Run(strings.Split(c.readme, "/")[3], func(t *testing.T) {
			t.Parallel()
			n := newNode(t)
			script := firstShellBlock(t, c.readme)
			out, err := exec.Command("nsenter", "--net="+n.ns.Path(), "bash", "-euo", "pipefail", "-c", script).CombinedOutput()
			if err != nil {
				t.Fatalf("example failed: %v\n%s", err, out)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Fatalf("example output lacks %q:\n%s", w, out)
				}
			}
			n.stop(t)
		})
	}
}
