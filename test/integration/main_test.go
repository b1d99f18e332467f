// Package integration tests the NetManager as the NodeEngine uses it: a real
// daemon in a node namespace of its own, "containers" as processes in further
// namespaces, real traffic between them, and proof that nothing is left behind.
package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/ebpfManager/kernel"
	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/test/nstest"
)

var netmanagerBin, ctlBin, modulesDir string

func TestMain(m *testing.M) {
	nstest.RequireRoot()
	dir, err := os.MkdirTemp("", "nm-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	netmanagerBin, err = nstest.Binary("NETMANAGER_BIN", "github.com/oakestra/netmanager/node-net-manager/cmd/netmanager", dir)
	if err == nil {
		ctlBin, err = nstest.Binary("NETMANAGERCTL_BIN", "github.com/oakestra/netmanager/node-net-manager/cmd/netmanagerctl", dir)
	}
	if err == nil {
		modulesDir, err = linkModules(dir)
	}
	if err == nil {
		// Mount bpffs once here, so parallel daemons never race to do it.
		_, err = kernel.EnsureBPFFS(kernel.DefaultBPFFS)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// linkModules makes a modules directory holding the built modules and the
// test-only ones (build/modules and build/test-modules from `make build`;
// NETMANAGER_MODULES_DIR, if set, in place of build/modules: plugins built
// for a daemon of one's own, NETMANAGER_BIN).
func linkModules(dir string) (string, error) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "modules")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	for _, sub := range []string{"modules", "test-modules"} {
		src := filepath.Join(root, "build", sub)
		if v := os.Getenv("NETMANAGER_MODULES_DIR"); v != "" && sub == "modules" {
			src = v
		}
		entries, err := os.ReadDir(src)
		if err != nil {
			return "", fmt.Errorf("%w (run `make build` first)", err)
		}
		for _, e := range entries {
			if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(out, e.Name())); err != nil {
				return "", err
			}
		}
	}
	return out, nil
}

// node is one worker node: its namespace, a pristine snapshot, and its daemon.
type node struct {
	ns       *nstest.Netns
	pristine string // before the daemon started
	ready    string // after the daemon started, no services
	d        *nstest.Daemon
}

func newNode(t *testing.T, args ...string) *node {
	t.Helper()
	n := &node{ns: nstest.NewNetns(t, "nm-node")}
	n.pristine = n.settled(t)
	n.d = nstest.StartDaemon(t, netmanagerBin, n.ns, append([]string{"--modules-dir", modulesDir}, args...)...)
	n.ready = n.settled(t)
	return n
}

// settled returns the node's snapshot once two in a row agree: the kernel
// finishes some bookkeeping (IPv6 on new links) a moment after a change.
func (n *node) settled(t *testing.T) string {
	t.Helper()
	prev := n.ns.Snapshot(t)
	for i := 0; i < 30; i++ {
		time.Sleep(50 * time.Millisecond)
		cur := n.ns.Snapshot(t)
		if cur == prev {
			return cur
		}
		prev = cur
	}
	t.Fatalf("the node's network never settled")
	return ""
}

// assertState fails the test when the node's network differs from want,
// allowing the kernel a moment to finish asynchronous bookkeeping.
func (n *node) assertState(t *testing.T, want, what string) {
	t.Helper()
	n.assertWithin(t, want, what, 20)
}

// assertStateEventually is assertState for changes the kernel makes
// asynchronously and slowly (a destroyed namespace takes its veths down later).
func (n *node) assertStateEventually(t *testing.T, want, what string) {
	t.Helper()
	n.assertWithin(t, want, what, 50)
}

func (n *node) assertWithin(t *testing.T, want, what string, tries int) {
	t.Helper()
	var got string
	for i := 0; i < tries; i++ {
		if got = n.ns.Snapshot(t); got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: node network differs:\n%s", what, nstest.Diff(want, got))
}

// stop stops the daemon and asserts the node is as it was before it started.
func (n *node) stop(t *testing.T) {
	t.Helper()
	n.d.Stop(t)
	n.assertState(t, n.pristine, "after shutdown")
}

// container is a process in a namespace of its own, as a container would be.
type container struct {
	ns  *nstest.Netns
	pid int
}

func newContainer(t *testing.T) *container {
	t.Helper()
	ns := nstest.NewNetns(t, "nm-ctr")
	return &container{ns: ns, pid: ns.StartProcess(t)}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func deployContainer(t *testing.T, n *node, c *container, name string, inst int, ports string) api.DeployResponse {
	t.Helper()
	resp, err := n.d.Client.Deploy(ctx(t), deploy.KindContainer, api.DeployBody{PID: &c.pid, ServiceName: name, InstanceNumber: &inst, PortMappings: ports})
	if err != nil {
		t.Fatalf("deploy %s/%d: %v", name, inst, err)
	}
	return resp
}

func apiBody(pid int, name string, inst int) api.DeployBody {
	return api.DeployBody{PID: &pid, ServiceName: name, InstanceNumber: &inst}
}

func undeploy(t *testing.T, n *node, kind deploy.Kind, name string, inst int) {
	t.Helper()
	if err := n.d.Client.Undeploy(ctx(t), kind, name, inst); err != nil {
		t.Fatalf("undeploy %s/%d: %v", name, inst, err)
	}
}

// serveEcho listens inside ns and echoes one line per connection.
func serveEcho(t *testing.T, ns *nstest.Netns, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen(network, addr); return }); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					_, _ = c.Write([]byte("echo " + line))
				}
			}()
		}
	}()
	return ln
}

// echo connects from inside ns to addr, sends a line and returns the reply.
func echo(ns *nstest.Netns, network, addr string) (string, error) {
	var conn net.Conn
	err := ns.Do(func() (err error) {
		conn, err = net.DialTimeout(network, addr, 3*time.Second)
		return
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte("hello\n")); err != nil {
		return "", err
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(reply), err
}

func assertEcho(t *testing.T, from *nstest.Netns, network, addr string) {
	t.Helper()
	got, err := echo(from, network, addr)
	if err != nil || got != "echo hello" {
		t.Fatalf("TCP %s from %s to %s: %q, %v", network, from.Name, addr, got, err)
	}
}

func assertPing(t *testing.T, from *nstest.Netns, addr string) {
	t.Helper()
	args := []string{"ping", "-c", "2", "-i", "0.2", "-W", "2", addr}
	if strings.Contains(addr, ":") {
		args = append(args[:1], append([]string{"-6"}, args[1:]...)...)
	}
	if out, err := from.Exec(args...); err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", addr, from.Name, err, out)
	}
}
