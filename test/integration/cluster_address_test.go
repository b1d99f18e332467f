package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/test/clustersite"
	"github.com/oakestra/netmanager/test/clusterstub"
	"github.com/oakestra/netmanager/test/nstest"
)

// followingNode is node i on the underlay without a configured nodeIP: its
// address is the default route's source (a default route via the underlay
// namespace), which the daemon follows. A removed primary address promotes
// the secondary one, as on a host whose DHCP client renews to a new
// address before dropping the old.
func followingNode(t *testing.T, ul *nstest.Netns, i int) *node {
	t.Helper()
	n := &node{ns: nstest.NewNetns(t, "nm-node")}
	clustersite.Join(t, ul, n.ns, i)
	n.ns.MustExec(t, "sysctl", "-qw", "net.ipv4.conf.underlay0.promote_secondaries=1")
	n.ns.MustExec(t, "ip", "route", "add", "default", "via", "192.168.77.254", "dev", "underlay0")
	cfg := filepath.Join(t.TempDir(), "netmanager.json")
	text := fmt.Sprintf(`{"nodeSubnet": "10.18.%d.0/24", "nodeSubnetV6": "fd00:18:%d::/64"}`, i, i)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	n.pristine = n.settled(t)
	n.d = nstest.StartDaemon(t, netmanagerBin, n.ns, "--modules-dir", modulesDir, "--config", cfg)
	n.ready = n.settled(t)
	return n
}

// moveAddress renumbers a following node's underlay interface as DHCP
// would: the new address is added, the default route moves to it, the old
// address goes.
func moveAddress(t *testing.T, n *node, from, to string) {
	t.Helper()
	n.ns.MustExec(t, "ip", "addr", "add", to+"/24", "dev", "underlay0")
	n.ns.MustExec(t, "ip", "route", "replace", "default", "via", "192.168.77.254", "dev", "underlay0")
	n.ns.MustExec(t, "ip", "addr", "del", from+"/24", "dev", "underlay0")
}

// addressChanged returns the host_ip of every service/address-changed
// message from node by "job/instance".
func addressChanged(m *clusterstub.Manager, node string) map[string]string {
	out := map[string]string{}
	for _, msg := range m.Messages("service/address-changed") {
		var d cluster.Deployed
		if msg.Node == node && json.Unmarshal(msg.Payload, &d) == nil {
			out[fmt.Sprintf("%s/%d", d.AppName, d.InstanceNumber)] = d.HostIP
		}
	}
	return out
}

// localAsker asks addr from c over TCP every 100 ms until stopped and
// counts the failures: the node's own flows must not notice its move.
type localAsker struct {
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	asked    int
	failures []string
}

func startLocalAsker(c *container, addr, want string) *localAsker {
	l := &localAsker{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			got, err := ask(c, "tcp", addr)
			l.mu.Lock()
			l.asked++
			if err != nil || got != want {
				l.failures = append(l.failures, fmt.Sprintf("%s: %q %v", time.Now().Format("15:04:05.000"), got, err))
			}
			l.mu.Unlock()
			select {
			case <-l.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return l
}

func (l *localAsker) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	<-l.done
	if len(l.failures) > 0 || l.asked < 5 {
		t.Fatalf("a service on the moving node, asked by its neighbour there: %d asked, failures %v", l.asked, l.failures)
	}
}

// The address of node B (no nodeIP configured) changes under way: B
// reports each of its instances at the new address over
// service/address-changed, the cluster tells the nodes that follow their
// jobs, and a client on node A reaches B's service by its service IP again
// within 5 s, through the user-space tunnel; a client on B reaching a
// service on B never notices. Moving back works the same way.
func TestClusterAddressChanged(t *testing.T) {
	testAddressChanged(t, false)
}

// As TestClusterAddressChanged, with the eBPF proxy loaded on both nodes'
// underlay: B's kernel tunnel moves to the new address with it, and A's
// kernel tunnel reaches B there.
func TestClusterAddressChangedEBPF(t *testing.T) {
	testAddressChanged(t, true)
}

func testAddressChanged(t *testing.T, ebpf bool) {
	ul, _ := clustersite.NewUnderlay(t)
	m := clustersite.NewManager(t, ul, 3)
	a := underlayNode(t, ul, 1)
	a.register(t, "node-a")
	b := followingNode(t, ul, 2)
	b.register(t, "node-b")
	c := underlayNode(t, ul, 3)
	c.register(t, "node-c")
	cliA, cliB, srv, late := newContainer(t), newContainer(t), newContainer(t), newContainer(t)
	deployContainer(t, a, cliA, "app.ns.cli.ns", 0, "")
	deployContainer(t, b, cliB, "app.ns.cli.ns", 1, "")
	deployContainer(t, b, srv, "app.ns.srv.ns", 0, "")
	deployContainer(t, b, late, "app.ns.late.ns", 0, "")
	serveName(t, srv.ns, "7000", "srv-0")
	serveName(t, late.ns, "7000", "late-0")
	waitUntil(t, "the cluster knows B's instances", func() bool {
		return len(m.Instances("app.ns.srv.ns")) == 1 && len(m.Instances("app.ns.late.ns")) == 1 && len(m.Instances("app.ns.cli.ns")) == 2
	})
	if in := m.Instances("app.ns.srv.ns")[0]; in.HostIP != "192.168.77.2" {
		t.Fatalf("B reported itself at %s, want its default route's source 192.168.77.2", in.HostIP)
	}
	srvRR := rrPort(m, "app.ns.srv.ns")
	askUntil(t, a, b, cliA, srvRR, "srv-0", "A reaches B before the move")
	if ebpf {
		loadTunnel(t, a, "192.168.77.2")
		loadTunnel(t, b, "192.168.77.1")
	}
	local := startLocalAsker(cliB, rrPort(m, "app.ns.late.ns"), "late-0")
	for _, step := range []struct{ from, to string }{{"192.168.77.2", "192.168.77.12"}, {"192.168.77.12", "192.168.77.2"}} {
		before := len(m.Messages("service/address-changed"))
		moved := time.Now()
		moveAddress(t, b, step.from, step.to)
		reachAgain(t, a, b, cliA, srvRR, moved)
		waitUntil(t, "B reports each of its instances at "+step.to, func() bool {
			got := addressChanged(m, "node-b")
			return len(m.Messages("service/address-changed")) >= before+3 && got["app.ns.srv.ns/0"] == step.to &&
				got["app.ns.late.ns/0"] == step.to && got["app.ns.cli.ns/1"] == step.to
		})
		if in := m.Instances("app.ns.srv.ns")[0]; in.HostIP != step.to || in.HostPort != 50103 {
			t.Fatalf("the cluster has B's instance at %s:%d, want %s:50103", in.HostIP, in.HostPort, step.to)
		}
		var px struct{ Tunnel string }
		getJSON(t, b, "/proxy", &px)
		if px.Tunnel != step.to+":50103" {
			t.Fatalf("B's user-space tunnel is at %s, want %s:50103", px.Tunnel, step.to)
		}
		if ebpf {
			assertKernelTunnel(t, a, b, cliA, srvRR, step.to)
		}
	}
	local.finish(t)
	if msgs := addressChanged(m, "node-a"); len(msgs) != 0 {
		t.Fatalf("node A, whose nodeIP is configured, reported a change: %v", msgs)
	}
	undeploy(t, b, "container", "app.ns.late.ns", 0)
	undeploy(t, b, "container", "app.ns.srv.ns", 0)
	undeploy(t, b, "container", "app.ns.cli.ns", 1)
	undeploy(t, a, "container", "app.ns.cli.ns", 0)
	if ebpf {
		for _, n := range []*node{a, b} {
			if err := n.d.Client.Do(ctx(t), "DELETE", "/ebpf", nil, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, n := range []*node{a, b, c} {
		n.stop(t)
	}
}

// reachAgain asks B's service from A until it answers, failing when that
// takes more than 5 s from the move.
func reachAgain(t *testing.T, a, b *node, cli *container, addr string, moved time.Time) {
	t.Helper()
	var got string
	var err error
	for time.Since(moved) < 5*time.Second {
		if got, err = ask(cli, "tcp", addr); err == nil && got == "srv-0" {
			t.Logf("A reached B's service %v after B's address changed", time.Since(moved).Round(time.Millisecond))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	var pa, pb map[string]any
	getJSON(t, a, "/proxy", &pa)
	getJSON(t, b, "/proxy", &pb)
	t.Fatalf("A did not reach B's service within 5 s of its move: %q %v\nA: %v\nB: %v\nB's log:\n%s", got, err, pa, pb, tail(b.d.Log(), 30))
}

// assertKernelTunnel checks that A's flows to B at its new address go
// through the kernel tunnels: the user-space proxy on A takes none of
// them, and B's user-space tunnel receives none (B's kernel tunnel takes
// them at the new address).
func assertKernelTunnel(t *testing.T, a, b *node, cli *container, addr, bAddr string) {
	t.Helper()
	waitUntil(t, "A's eBPF proxy knows B at "+bAddr, func() bool {
		var insts []struct{ ID, Name string }
		getJSON(t, a, "/ebpf", &insts)
		for _, in := range insts {
			var peers map[string]map[string]uint64
			if in.Name == "proxy" {
				getJSON(t, a, "/ebpf/"+in.ID+"/peers", &peers)
				_, ok := peers[bAddr]
				return ok
			}
		}
		return false
	})
	// A's table may have B's other jobs at the new address before this one.
	waitUntil(t, "A reaches B at "+bAddr, func() bool {
		got, err := ask(cli, "tcp", addr)
		return err == nil && got == "srv-0"
	})
	before, beforeB := userSpace(t, a), userSpace(t, b)
	for i := 0; i < 3; i++ {
		if got, err := ask(cli, "tcp", addr); err != nil || got != "srv-0" {
			t.Fatalf("A to B at %s through the kernel tunnel: %q %v", bAddr, got, err)
		}
	}
	if after := userSpace(t, a); after.Stats.NewSessions != before.Stats.NewSessions {
		t.Fatalf("A's user-space proxy took %d flows the kernel tunnel should have", after.Stats.NewSessions-before.Stats.NewSessions)
	}
	if after := userSpace(t, b); after.Stats.TunnelIn != beforeB.Stats.TunnelIn {
		t.Fatalf("B's user-space tunnel received %d packets its kernel tunnel should have", after.Stats.TunnelIn-beforeB.Stats.TunnelIn)
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
