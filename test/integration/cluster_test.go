package integration

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/node-net-manager/proxy"
	"github.com/oakestra/netmanager/test/clusterstub"
	"github.com/oakestra/netmanager/test/nstest"
)

// Registering with a cluster whose broker does not answer is a 503 naming
// the broker, and the node stays unregistered and unchanged.
func TestClusterBrokerDownAtRegister(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	code, out, err := n.d.Client.Raw(ctx(t), "POST", "/register", []byte(`{"client_id": "node-1", "cluster_address": "127.0.0.1"}`))
	if err != nil || code != 503 || !strings.Contains(string(out), "tcp://127.0.0.1:10003") {
		t.Fatalf("register with no broker: %d %s %v", code, out, err)
	}
	n.assertState(t, n.ready, "after a refused registration")
	n.stop(t)
}

// Registration against a real broker (in the node's namespace, on the
// default port) and the stand-in cluster manager: every instance the node
// deploys, before and after, is reported with the fields the cluster
// stores. A node with an instance deployed keeps its subnet.
func TestClusterRegistration(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	clusterstub.StartBroker(t, n.ns, "127.0.0.1:10003")
	m := clusterstub.NewManagerIn(t, n.ns, "127.0.0.1:10003", cluster.SubnetResult{Address: "10.18.7.0", AddressV6: "fd00:18:7::"})
	a := newContainer(t)
	ra := deployContainer(t, n, a, "app.ns.first.ns", 0, "")
	code, out, err := n.d.Client.Raw(ctx(t), "POST", "/register", []byte(`{"client_id": "node-1", "cluster_address": "127.0.0.1"}`))
	var reg map[string]string
	_ = json.Unmarshal(out, &reg)
	if err != nil || code != 200 || reg["mode"] != "cluster" || reg["clusterSubnet"] != "10.18.7.0" || reg["clusterSubnetV6"] != "fd00:18:7::" ||
		reg["subnet"] != "10.18.0.0/24" || reg["subnetv6"] != "fd00:18::/64" {
		t.Fatalf("register: %d %s %v", code, out, err)
	}
	b := newContainer(t)
	rb := deployContainer(t, n, b, "app.ns.second.ns", 2, "")
	want := map[string]cluster.Deployed{
		"app.ns.first.ns":  {AppName: "app.ns.first.ns", Status: "DEPLOYED", InstanceNumber: 0, NsIP: ra.NsAddress, NsIPv6: ra.NsAddressV6, HostIP: "10.18.0.1", HostPort: "50103"},
		"app.ns.second.ns": {AppName: "app.ns.second.ns", Status: "DEPLOYED", InstanceNumber: 2, NsIP: rb.NsAddress, NsIPv6: rb.NsAddressV6, HostIP: "10.18.0.1", HostPort: "50103"},
	}
	waitUntil(t, "both instances reported", func() bool { return len(m.Messages("service/deployed")) == 2 })
	for _, msg := range m.Messages("service/deployed") {
		var d cluster.Deployed
		if err := json.Unmarshal(msg.Payload, &d); err != nil || msg.Node != "node-1" || d != want[d.AppName] {
			t.Fatalf("service/deployed from %s: %s, want %+v", msg.Node, msg.Payload, want[d.AppName])
		}
	}
	if got := m.Messages("subnet"); len(got) != 1 || string(got[0].Payload) != `{"METHOD":"GET"}` {
		t.Fatalf("subnet requests: %+v", got)
	}
	for _, s := range []struct {
		name string
		inst int
	}{{"app.ns.first.ns", 0}, {"app.ns.second.ns", 2}} {
		undeploy(t, n, "container", s.name, s.inst)
	}
	n.stop(t)
}

// A node that registers with nothing deployed moves to the subnet the
// cluster gives (Oakestra's /26 and /120): the bridge, masquerading and the
// instances' addresses follow, and it reports the default route's source
// address as its host_ip. Its shutdown leaves the node as it was, and so
// does a crash followed by a start without persist.
func TestClusterAdoptsSubnet(t *testing.T) {
	t.Parallel()
	n := &node{ns: nstest.NewNetns(t, "nm-node")}
	n.ns.MustExec(t, "ip", "link", "add", "nm-up0", "type", "veth", "peer", "name", "nm-up1")
	n.ns.MustExec(t, "ip", "addr", "add", "192.168.78.1/24", "dev", "nm-up0")
	n.ns.MustExec(t, "ip", "link", "set", "nm-up0", "up")
	n.ns.MustExec(t, "ip", "link", "set", "nm-up1", "up")
	n.ns.MustExec(t, "ip", "route", "add", "default", "via", "192.168.78.254", "dev", "nm-up0")
	n.pristine = n.settled(t)
	n.d = nstest.StartDaemon(t, netmanagerBin, n.ns, "--modules-dir", modulesDir)
	n.ready = n.settled(t)
	clusterstub.StartBroker(t, n.ns, "127.0.0.1:10003")
	m := clusterstub.NewManagerIn(t, n.ns, "127.0.0.1:10003", cluster.SubnetResult{Address: "10.18.7.64", AddressV6: "fd00:18:7::100"})
	code, out, err := n.d.Client.Raw(ctx(t), "POST", "/register", []byte(`{"client_id": "node-1", "cluster_address": "127.0.0.1"}`))
	var reg map[string]string
	_ = json.Unmarshal(out, &reg)
	if err != nil || code != 200 || reg["subnet"] != "10.18.7.64/26" || reg["subnetv6"] != "fd00:18:7::100/120" || reg["clusterSubnet"] != "10.18.7.64" {
		t.Fatalf("register: %d %s %v", code, out, err)
	}
	br := n.ns.MustExec(t, "ip", "-br", "addr", "show", "dev", "goProxyBridge")
	if !strings.Contains(br, " 10.18.7.65/26 ") || !strings.Contains(br, " fd00:18:7::101/120 ") || strings.Contains(br, "10.18.0.1") || strings.Contains(br, "fd00:18::1/") {
		t.Fatalf("bridge after the move: %s", br)
	}
	if masq := n.ns.MustExec(t, "iptables", "-t", "nat", "-S", "NETMANAGER-POSTROUTING"); !strings.Contains(masq, "-s 10.18.7.64/26 ") || strings.Contains(masq, "10.18.0.0") {
		t.Fatalf("masquerading after the move:\n%s", masq)
	}
	c := newContainer(t)
	r := deployContainer(t, n, c, "app.ns.first.ns", 0, "")
	if r.NsAddress != "10.18.7.66" || r.NsAddressV6 != "fd00:18:7::102" {
		t.Fatalf("deployed at %s %s, want the cluster's subnet", r.NsAddress, r.NsAddressV6)
	}
	c.ns.MustExec(t, "ping", "-c1", "-W2", "10.18.7.65")
	want := cluster.Deployed{AppName: "app.ns.first.ns", Status: "DEPLOYED", NsIP: "10.18.7.66", NsIPv6: "fd00:18:7::102", HostIP: "192.168.78.1", HostPort: "50103"}
	waitUntil(t, "the instance reported", func() bool { return len(m.Messages("service/deployed")) == 1 })
	var d cluster.Deployed
	if err := json.Unmarshal(m.Messages("service/deployed")[0].Payload, &d); err != nil || d != want {
		t.Fatalf("service/deployed: %+v %v, want %+v", d, err, want)
	}
	undeploy(t, n, "container", "app.ns.first.ns", 0)
	state := "--state-dir=" + t.TempDir()
	n.d.Stop(t)
	n.d = nstest.StartDaemon(t, netmanagerBin, n.ns, "--modules-dir", modulesDir, state)
	if code, out, err := n.d.Client.Raw(ctx(t), "POST", "/register", []byte(`{"client_id": "node-1", "cluster_address": "127.0.0.1"}`)); err != nil || code != 200 {
		t.Fatalf("register again: %d %s %v", code, out, err)
	}
	pins := n.d.PinDir
	n.d.Kill(t)
	n.d = nstest.StartDaemon(t, netmanagerBin, n.ns, "--modules-dir", modulesDir, state, "--pin-dir", pins)
	if got := n.settled(t); got != n.ready {
		t.Fatalf("a start after a crash in the cluster's subnet did not return to the configured one:\n%s\nwant\n%s", got, n.ready)
	}
	n.stop(t)
}

// waitUntil polls cond for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting until %s", what)
}

// A cluster that does not answer a table query (it times out after 5 s)
// makes the connection fail with an ICMP unreachable instead of hanging,
// and while the proxy waits for it, flows to services it knows go on.
func TestClusterQueryTimeout(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	clusterstub.StartBroker(t, n.ns, "127.0.0.1:10003")
	m := clusterstub.NewManagerIn(t, n.ns, "127.0.0.1:10003", cluster.SubnetResult{Address: "10.18.7.0", AddressV6: "fd00:18:7::"})
	m.Service("app.ns.cli.ns")
	m.Service("app.ns.srv.ns")
	srvRR := rrPort(m, "app.ns.srv.ns")
	if code, out, err := n.d.Client.Raw(ctx(t), "POST", "/register", []byte(`{"client_id": "node-1", "cluster_address": "127.0.0.1"}`)); err != nil || code != 200 {
		t.Fatalf("register: %d %s %v", code, out, err)
	}
	cli, srv := newContainer(t), newContainer(t)
	deployContainer(t, n, cli, "app.ns.cli.ns", 0, "")
	deployContainer(t, n, srv, "app.ns.srv.ns", 0, "")
	serveName(t, srv.ns, "7000", "srv-0")
	waitUntil(t, "the service is reachable by its cluster IP", func() bool {
		got, err := ask(cli, "tcp", srvRR)
		return err == nil && got == "srv-0"
	})
	m.Silent(true)
	failed := make(chan error, 1)
	go func() {
		failed <- cli.ns.Do(func() error {
			c, err := net.DialTimeout("tcp", "10.30.99.1:7000", 15*time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
	}()
	waitUntil(t, "the proxy holds the first packet", func() bool {
		var p struct{ Stats proxy.Stats }
		getJSON(t, n, "/proxy", &p)
		return p.Stats.Held > 0
	})
	if got, err := ask(cli, "tcp", srvRR); err != nil || got != "srv-0" {
		t.Fatalf("a known service while the cluster is asked about another: %q %v", got, err)
	}
	select {
	case err := <-failed:
		t.Fatalf("the connection to the unknown service ended before the known one answered: %v", err)
	default:
	}
	if err := <-failed; err == nil || !strings.Contains(err.Error(), "no route to host") {
		t.Fatalf("connect to a service the cluster does not answer about: %v, want no route to host", err)
	}
	var p struct{ Stats proxy.Stats }
	getJSON(t, n, "/proxy", &p)
	if p.Stats.Dropped[proxy.DropNoAnswer] == 0 {
		t.Fatalf("proxy counters: %+v", p.Stats)
	}
	m.Silent(false)
	undeploy(t, n, "container", "app.ns.srv.ns", 0)
	undeploy(t, n, "container", "app.ns.cli.ns", 0)
	n.stop(t)
}

// Service ranges that leave out addresses an Oakestra cluster gives are
// refused: at start with the cluster configured (exit 2, naming both), and
// at POST /register (409, naming both), leaving the node as it was.
func TestClusterRangesContradict(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "netmanager.json")
	if err := os.WriteFile(cfg, []byte(`{"serviceRangeV6": "fdff:2000::/64"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "serviceRangeV6 fdff:2000::/64 does not cover fdff::/20, where an Oakestra cluster gives instance IPv6 addresses"
	out, err := exec.Command(netmanagerBin, "--config", cfg, "--client-id", "node-1", "--cluster-address", "192.0.2.1").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), want) {
		t.Fatalf("start in cluster mode with a contradicting range: %v\n%s", err, out)
	}
	n := newNode(t, "--config", cfg)
	code, body, err := n.d.Client.Raw(ctx(t), "POST", "/register", []byte(`{"client_id": "node-1", "cluster_address": "127.0.0.1"}`))
	if err != nil || code != 409 || !strings.Contains(string(body), want) {
		t.Fatalf("register with a contradicting range: %d %s %v", code, body, err)
	}
	n.assertState(t, n.ready, "after a refused registration")
	n.stop(t)
}
