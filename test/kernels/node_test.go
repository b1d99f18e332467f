//go:build kernelmatrix

package kernels

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/test/nstest"
)

// node is the worker node: its namespace and its daemon.
type node struct {
	ns *nstest.Netns
	d  *daemon
}

// container is a process in a namespace of its own.
type container struct {
	ns  *nstest.Netns
	pid int
}

func newContainer(t *testing.T) *container {
	t.Helper()
	ns := nstest.NewNetns(t, "nmk-ctr")
	return &container{ns: ns, pid: ns.StartProcess(t)}
}

// deploy deploys c as instance 0 of name and returns its namespace IPv4.
func (n *node) deploy(t *testing.T, c *container, name string) string {
	t.Helper()
	inst := 0
	resp, err := n.d.Client.Deploy(ctx(t), deploy.KindContainer, api.DeployBody{PID: &c.pid, ServiceName: name, InstanceNumber: &inst})
	if err != nil {
		t.Fatalf("deploy %s: %v", name, err)
	}
	return resp.NsAddress
}

func (n *node) services(t *testing.T) []deploy.Record {
	t.Helper()
	recs, err := n.d.Client.Services(ctx(t))
	if err != nil {
		t.Fatalf("GET /services: %v", err)
	}
	return recs
}

func (n *node) hostVeth(t *testing.T, name string) string {
	t.Helper()
	for _, r := range n.services(t) {
		if r.ServiceName == name {
			return r.HostVeth
		}
	}
	t.Fatalf("%s is not deployed", name)
	return ""
}

func (n *node) addrOf(t *testing.T, name string) string {
	t.Helper()
	for _, r := range n.services(t) {
		if r.ServiceName == name {
			return r.NsAddress.String()
		}
	}
	t.Fatalf("%s is not deployed", name)
	return ""
}

func (n *node) load(t *testing.T, body string) ebpfmanager.Info {
	t.Helper()
	var info ebpfmanager.Info
	if err := n.d.Client.Do(ctx(t), http.MethodPost, "/ebpf", json.RawMessage(body), &info); err != nil {
		t.Fatalf("load %s: %v", body, err)
	}
	return info
}

func (n *node) get(t *testing.T, path string, out any) {
	t.Helper()
	if err := n.d.Client.Do(ctx(t), http.MethodGet, path, nil, out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// counts is the packets the packet counter instance id counted on veth,
// both directions.
func (n *node) counts(t *testing.T, id, veth string) uint64 {
	t.Helper()
	var c map[string]map[string]struct{ Packets uint64 }
	n.get(t, "/ebpf/"+id+"/counts", &c)
	return c[veth]["ingress"].Packets + c[veth]["egress"].Packets
}

// release is the running kernel's release string.
func release(t *testing.T) string {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	return unix.ByteSliceToString(u.Release[:])
}

// expectedMode is the chain mode this kernel must get: TCX came in Linux
// 6.6. The daemon decides by probing the kernel; the version is this
// test's independent oracle.
func expectedMode(t *testing.T) ebpfmanager.Mode {
	t.Helper()
	r := release(t)
	parts := strings.SplitN(r, ".", 3)
	if len(parts) < 2 {
		t.Fatalf("kernel release %q", r)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(strings.TrimFunc(parts[1], func(c rune) bool { return c < '0' || c > '9' }))
	if err1 != nil || err2 != nil {
		t.Fatalf("kernel release %q", r)
	}
	if major > 6 || major == 6 && minor >= 6 {
		return ebpfmanager.ModeTCX
	}
	return ebpfmanager.ModeLegacy
}

// assertMode checks that every instance reports mode want and that the
// kernel has exactly the programs they list on veth, as TCX links or as
// legacy cls_bpf filters — and none of the other kind.
func (n *node) assertMode(t *testing.T, infos []ebpfmanager.Info, want ebpfmanager.Mode, veth string) {
	t.Helper()
	perHook := map[string]int{}
	for _, in := range infos {
		if in.Mode != want || in.State != ebpfmanager.StateRunning || len(in.Attachments) == 0 {
			t.Fatalf("%s (%s): mode %q, state %q, %d attachments; want mode %q, running, attached", in.Name, in.ID, in.Mode, in.State, len(in.Attachments), want)
		}
		for _, a := range in.Attachments {
			if a.Interface == veth {
				perHook[a.Hook]++
			}
		}
	}
	for hook, at := range map[string]ebpf.AttachType{"ingress": ebpf.AttachTCXIngress, "egress": ebpf.AttachTCXEgress} {
		filters := strings.Count(n.ns.MustExec(t, "tc", "filter", "show", "dev", veth, hook), "direct-action")
		if want == ebpfmanager.ModeLegacy {
			if filters != perHook[hook] {
				t.Fatalf("legacy: %d cls_bpf filters on %s %s, the instances list %d", filters, veth, hook, perHook[hook])
			}
			continue
		}
		if progs := n.tcxPrograms(t, veth, at); filters != 0 || progs != perHook[hook] {
			t.Fatalf("tcx: %d TCX programs and %d cls_bpf filters on %s %s, the instances list %d", progs, filters, veth, hook, perHook[hook])
		}
	}
}

// tcxPrograms counts the TCX programs on a hook of ifname in the node.
func (n *node) tcxPrograms(t *testing.T, ifname string, at ebpf.AttachType) int {
	t.Helper()
	var count int
	err := n.ns.Do(func() error {
		l, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		res, err := link.QueryPrograms(link.QueryOptions{Target: l.Index, Attach: at})
		if err != nil {
			return err
		}
		count = len(res.Programs)
		return nil
	})
	if err != nil {
		t.Fatalf("query TCX on %s: %v", ifname, err)
	}
	return count
}

// serveLine answers every TCP connection or UDP datagram on addr inside ns
// with line, until the test ends.
func serveLine(t *testing.T, ns *nstest.Netns, network, addr, line string) {
	t.Helper()
	if network == "udp" {
		var pc net.PacketConn
		if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp4", addr); return }); err != nil {
			t.Fatalf("listen udp %s in %s: %v", addr, ns.Name, err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 64)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo([]byte(line+"\n"), from)
			}
		}()
		return
	}
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp4", addr); return }); err != nil {
		t.Fatalf("listen tcp %s in %s: %v", addr, ns.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				_, _ = c.Write([]byte(line + "\n"))
				// The client closes first, so TIME_WAIT stays with it.
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, _ = c.Read(make([]byte, 1))
			}(c)
		}
	}()
}

// reachable reports whether from gets want back from addr within wait.
func reachable(from *container, network, addr, want string, wait time.Duration) bool {
	var conn net.Conn
	if err := from.ns.Do(func() (err error) { conn, err = net.DialTimeout(network, addr, wait); return }); err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	if strings.HasPrefix(network, "udp") {
		if _, err := conn.Write([]byte("?")); err != nil {
			return false
		}
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && strings.TrimSpace(line) == want
}
