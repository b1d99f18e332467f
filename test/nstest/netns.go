package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

// RequireRoot ends the test binary with a failure when it is not root: these
// tests must run (CI runs them as root) and never skip silently.
func RequireRoot() {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "FAIL: these integration tests need root (network namespaces, veths, iptables); run `make test` as root")
		os.Exit(1)
	}
}

// UniqueName returns prefix-<8 random hex>.
func UniqueName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Netns is a named network namespace a test made.
type Netns struct {
	Name string
}

// NewNetns makes a uniquely named namespace with lo up, deleted by exact name
// when the test ends.
func NewNetns(t testing.TB, prefix string) *Netns {
	t.Helper()
	n := &Netns{Name: UniqueName(prefix)}
	Run(t, "ip", "netns", "add", n.Name)
	t.Cleanup(func() { DeleteNetns(t, n.Name) })
	n.MustExec(t, "ip", "link", "set", "lo", "up")
	return n
}

// DeleteNetns deletes the namespace called exactly name, if it exists.
func DeleteNetns(t testing.TB, name string) {
	t.Helper()
	if _, err := os.Stat("/run/netns/" + name); err != nil {
		return
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		t.Errorf("delete namespace %s: %v: %s", name, err, out)
	}
}

// Path is the namespace's bind-mount path.
func (n *Netns) Path() string { return "/run/netns/" + n.Name }

// Exec runs a command inside the namespace and returns its combined output.
func (n *Netns) Exec(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...).CombinedOutput()
	return string(out), err
}

// MustExec is Exec that fails the test on error.
func (n *Netns) MustExec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Exec(args...)
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// Do runs fn on an OS thread switched into the namespace; sockets fn opens
// belong to the namespace and stay usable afterwards from any goroutine.
func (n *Netns) Do(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromPath(n.Path())
	if err != nil {
		return err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return err
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		runtime.LockOSThread() // keep the tainted thread from running other goroutines
		return fmt.Errorf("return to original namespace: %w", err)
	}
	return ferr
}

// StartProcess starts a long sleep inside the namespace, as a container's main
// process, and returns its PID; the test ends it by that PID.
func (n *Netns) StartProcess(t testing.TB) int {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", n.Name, "sleep", "3600")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start process in %s: %v", n.Name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// ip netns exec execs the command in place, so the PID is the sleep's once
	// it has switched namespace: wait for that.
	for i := 0; i < 200; i++ {
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)); err == nil && sameNetns(ns, n.Path()) {
			return cmd.Process.Pid
		}
		sleepShort()
	}
	t.Fatalf("process %d never entered %s", cmd.Process.Pid, n.Name)
	return 0
}

// Run runs a command on the host and fails the test on error.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
