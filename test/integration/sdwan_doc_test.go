package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oakestra/netmanager/test/nstest"
)

var shellBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")

// walkthrough returns the sh blocks between <!-- walkthrough --> and
// <!-- /walkthrough --> of a markdown file, in order.
func walkthrough(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	start, end := strings.Index(s, "<!-- walkthrough -->"), strings.Index(s, "<!-- /walkthrough -->")
	if start < 0 || end < start {
		t.Fatalf("%s has no walkthrough block", path)
	}
	var script strings.Builder
	for _, m := range shellBlock.FindAllStringSubmatch(s[start:end], -1) {
		script.WriteString(m[1])
	}
	return script.String()
}

// docs/sdwan.md's walkthrough runs as written, from the repository, with
// the test's binaries and modules and unique namespace, file and pin
// names; it leaves nothing behind.
func TestSDWANWalkthrough(t *testing.T) {
	root, _ := filepath.Abs("../..")
	script := walkthrough(t, filepath.Join(root, "docs", "sdwan.md"))
	const line = "A=sdwan-a B=sdwan-b HOST_A=sdwan-host-a HOST_B=sdwan-host-b\n"
	if !strings.HasPrefix(script, line) {
		t.Fatalf("the walkthrough does not start by naming its namespaces (%q)", line)
	}
	names := map[string]string{}
	for _, n := range []string{"sdwan-a", "sdwan-b", "sdwan-host-a", "sdwan-host-b"} {
		names[n] = nstest.UniqueName(n)
	}
	script = fmt.Sprintf("A=%s B=%s HOST_A=%s HOST_B=%s\n", names["sdwan-a"], names["sdwan-b"], names["sdwan-host-a"], names["sdwan-host-b"]) +
		strings.NewReplacer("build/bin/netmanagerctl", ctlBin, "build/bin/netmanager", netmanagerBin, "build/modules", modulesDir).
			Replace(strings.TrimPrefix(script, line))
	t.Cleanup(func() {
		for _, n := range names {
			if _, err := os.Stat("/run/netns/" + n); err == nil {
				t.Errorf("namespace %s left behind", n)
				nstest.DeleteNetns(t, n)
			}
		}
		for _, n := range []string{names["sdwan-a"], names["sdwan-b"]} {
			for _, p := range []string{"/sys/fs/bpf/" + n, "/tmp/" + n + ".state", "/tmp/" + n + ".pid", "/tmp/" + n + ".yaml", "/tmp/" + n + ".sock"} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("%s left behind", p)
					_ = os.RemoveAll(p)
				}
			}
		}
	})
	c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(c, "bash", "-euxo", "pipefail", "-c", script)
	cmd.Dir = root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) } // the script's process group
	cmd.WaitDelay = 5 * time.Second
	t.Cleanup(func() {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the script's own process group
		}
	})
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the walkthrough failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"loaded sdwan as instance 1", // both gateways
		"receiver",                   // iperf3 over WAN 1
		`"txPackets": 3,`,            // the three ToS 0x20 pings over WAN 2
		`"up": false`,                // WAN 1 after the cut
		"3 received, 0% packet loss", // pings over WAN 2 after the cut
		"create pdr: ok", "10.2.0.5/32  icmp", "100% packet loss", "no answer: the rule drops the pings",
		"delete pdr: ok", "2 received, 0% packet loss",
	} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("the walkthrough's output lacks %q:\n%s", want, out)
		}
	}
}
