//go:build kernelmatrix

package kernels

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/kernel"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/table"
	"github.com/oakestra/netmanager/test/nstest"
)

var netmanagerBin, modulesDir string

func TestMain(m *testing.M) {
	nstest.RequireRoot()
	netmanagerBin, modulesDir = os.Getenv("NETMANAGER_BIN"), os.Getenv("NETMANAGER_MODULES")
	if netmanagerBin == "" || modulesDir == "" {
		fmt.Fprintln(os.Stderr, "FAIL: NETMANAGER_BIN and NETMANAGER_MODULES must name the built daemon and build/modules (scripts/kernels/run.sh sets them)")
		os.Exit(1)
	}
	if _, err := kernel.EnsureBPFFS(kernel.DefaultBPFFS); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: bpffs:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// passWait is how long a connection the firewall allows may take (under
// qemu's software emulation too); denyWait how long one it denies is
// given before it counts as blocked (a round trip takes milliseconds).
const passWait, denyWait = 5 * time.Second, 1500 * time.Millisecond

// The firewall on the server: TCP and UDP 8080 in, nothing else in; what the
// server itself opens gets its replies (stateful).
const firewallConfig = `{"name": "firewall", "priority": 20, "services": ["app.ns.srv.ns"], "config": {"rules": [
	{"id": "tcp8080", "action": "allow", "direction": "ingress", "proto": "tcp", "dstPorts": "8080", "priority": 10},
	{"id": "udp8080", "action": "allow", "direction": "ingress", "proto": "udp", "dstPorts": "8080", "priority": 11},
	{"id": "denyin", "action": "deny", "direction": "ingress", "priority": 20}]}}`

// scenario is the node TestDaemonAcrossKernels and TestTraceAcrossKernels
// run on: a daemon (with --persist), the services cli and srv (TCP and UDP
// 8080 and TCP 9090 served in srv, TCP 7000 in cli), the packet counter
// (priority 10), the firewall (20, firewallConfig) and the eBPF proxy (50),
// in the chain mode the kernel allows (checked on srv's veth).
type scenario struct {
	*node
	cli, srv                      *container
	srvAddr, srvVeth, pins, state string
	loaded                        []ebpfmanager.Info
}

func newScenario(t *testing.T, want ebpfmanager.Mode) *scenario {
	t.Helper()
	s := &scenario{state: t.TempDir(), pins: pinDir(t), node: &node{ns: nstest.NewNetns(t, "nmk-node")}}
	s.d = startDaemon(t, s.ns, s.pins, s.state, "--persist")
	s.cli, s.srv = newContainer(t), newContainer(t)
	s.deploy(t, s.cli, "app.ns.cli.ns")
	s.srvAddr = s.deploy(t, s.srv, "app.ns.srv.ns")
	serveLine(t, s.srv.ns, "tcp", ":8080", "srv")
	serveLine(t, s.srv.ns, "udp", ":8080", "srv")
	serveLine(t, s.srv.ns, "tcp", ":9090", "srv")
	serveLine(t, s.cli.ns, "tcp", ":7000", "cli")
	s.srvVeth = s.hostVeth(t, "app.ns.srv.ns")
	s.loaded = []ebpfmanager.Info{
		s.load(t, `{"name": "packetcounter", "priority": 10}`),
		s.load(t, firewallConfig),
		s.load(t, `{"name": "proxy", "priority": 50}`),
	}
	s.assertMode(t, s.loaded, want, s.srvVeth)
	return s
}

// The daemon on this kernel: two services, the packet counter, the firewall
// and the eBPF proxy chained in the mode the kernel allows; the firewall
// and the proxy at work; a kill -9 and a restart with --persist after which
// the same instances, in the same mode, enforce the same rules.
func TestDaemonAcrossKernels(t *testing.T) {
	want := expectedMode(t)
	s := newScenario(t, want)
	n, cli, srv, srvAddr, srvVeth, loaded, pins, state := s.node, s.cli, s.srv, s.srvAddr, s.srvVeth, s.loaded, s.pins, s.state
	t.Logf("MATRIX: chain mode %s on %s", want, release(t))
	n.assertExpedited(t, want)
	rr := n.serviceIP(t, "app.ns.srv.ns")
	n.assertEnforced(t, cli, srv, srvAddr, rr, "before the restart")
	before := n.counts(t, loaded[0].ID, srvVeth)
	if before < 4 {
		t.Fatalf("the packet counter saw %d packets on %s", before, srvVeth)
	}

	n.d.Kill(t)
	if !reachable(cli, "tcp4", net.JoinHostPort(srvAddr, "8080"), "srv", passWait) || reachable(cli, "tcp4", net.JoinHostPort(srvAddr, "9090"), "srv", denyWait) {
		t.Fatal("with the daemon killed, the firewall no longer enforces its rules")
	}
	n.d = startDaemon(t, n.ns, pins, state, "--persist")
	var again []ebpfmanager.Info
	n.get(t, "/ebpf", &again)
	if len(again) != len(loaded) {
		t.Fatalf("after the restart: %d instances, want %d: %+v", len(again), len(loaded), again)
	}
	for i, in := range again {
		if in.ID != loaded[i].ID || !in.Readopted || len(in.Drift) != 0 || in.State != ebpfmanager.StateRunning {
			t.Fatalf("instance %d after the restart: %+v, was %+v", i, in, loaded[i])
		}
	}
	n.assertMode(t, again, want, srvVeth)
	n.assertEnforced(t, cli, srv, srvAddr, rr, "after kill -9 and a restart with --persist")
	if after := n.counts(t, loaded[0].ID, srvVeth); after <= before {
		t.Fatalf("the packet counter did not count on after the restart: %d, was %d", after, before)
	}
	n.teardown(t, pins, state)
}

// assertExpedited: under TCX the daemon expedites the RCU grace periods of
// its attaches (the kernel has /sys/kernel/rcu_expedited and lets it be
// written: no warning in the log), and the switch is off between them.
func (n *node) assertExpedited(t *testing.T, mode ebpfmanager.Mode) {
	t.Helper()
	if mode != ebpfmanager.ModeTCX {
		return
	}
	if log := n.d.log.String(); strings.Contains(log, "cannot expedite") {
		t.Fatalf("the daemon could not expedite its TCX attaches on %s:\n%s", release(t), log)
	}
	// another test's daemon in this guest may hold the switch for a moment
	for i := 0; ; i++ {
		b, err := os.ReadFile("/sys/kernel/rcu_expedited")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(b)) == "0" {
			break
		}
		if i == 100 {
			t.Fatalf("/sys/kernel/rcu_expedited stays %q after the attaches", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("MATRIX: TCX attaches expedited on %s", release(t))
}

// assertEnforced checks the firewall's rules and the eBPF proxy with real
// traffic: allowed TCP passes, denied TCP and ICMP do not, a connection the
// server opens gets its replies, and the server's round-robin service IP
// answers over TCP and UDP in the kernel (the user-space proxy sees nothing).
func (n *node) assertEnforced(t *testing.T, cli, srv *container, srvAddr, rr, when string) {
	t.Helper()
	var before, after proxyStats
	n.get(t, "/proxy", &before)
	if !reachable(cli, "tcp4", net.JoinHostPort(srvAddr, "8080"), "srv", passWait) {
		t.Fatalf("%s: TCP 8080, which the firewall allows, did not pass", when)
	}
	if reachable(cli, "tcp4", net.JoinHostPort(srvAddr, "9090"), "srv", denyWait) {
		t.Fatalf("%s: TCP 9090, which the firewall denies, passed", when)
	}
	if out, err := cli.ns.Exec("ping", "-c", "1", "-W", "1", srvAddr); err == nil {
		t.Fatalf("%s: ping, which the firewall denies, passed:\n%s", when, out)
	}
	if !reachable(srv, "tcp4", net.JoinHostPort(n.addrOf(t, "app.ns.cli.ns"), "7000"), "cli", passWait) {
		t.Fatalf("%s: the server's own connection got no reply: the firewall is not stateful", when)
	}
	for _, network := range []string{"tcp4", "udp4"} {
		if !reachable(cli, network, net.JoinHostPort(rr, "8080"), "srv", passWait) {
			t.Fatalf("%s: %s to the service IP %s:8080 got no answer", when, network, rr)
		}
	}
	n.get(t, "/proxy", &after)
	if after.Stats.NewSessions != before.Stats.NewSessions {
		t.Fatalf("%s: the user-space proxy carried %d service-IP flows the eBPF proxy should have", when, after.Stats.NewSessions-before.Stats.NewSessions)
	}
}

// teardown undeploys, unloads and stops, and lets a daemon without persist
// take the bridge and rules away, so the node namespace goes clean.
func (n *node) teardown(t *testing.T, pins, state string) {
	t.Helper()
	for _, s := range []string{"app.ns.cli.ns", "app.ns.srv.ns"} {
		if err := n.d.Client.Undeploy(ctx(t), deploy.KindContainer, s, 0); err != nil {
			t.Fatalf("undeploy %s: %v", s, err)
		}
	}
	if err := n.d.Client.Do(ctx(t), http.MethodDelete, "/ebpf", nil, nil); err != nil {
		t.Fatalf("DELETE /ebpf: %v", err)
	}
	n.d.Stop(t)
	n.d = startDaemon(t, n.ns, pins, state)
	n.d.Stop(t)
}

type proxyStats struct {
	Stats struct{ NewSessions uint64 }
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func (n *node) serviceIP(t *testing.T, name string) string {
	t.Helper()
	for _, r := range n.services(t) {
		if r.ServiceName == name {
			for _, s := range r.ServiceIPs {
				if s.Policy == table.PolicyRoundRobin && s.Address.Is4() {
					return s.Address.String()
				}
			}
		}
	}
	t.Fatalf("no round-robin IPv4 service IP for %s", name)
	return ""
}
