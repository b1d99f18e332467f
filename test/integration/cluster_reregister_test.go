package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/test/clustersite"
	"github.com/oakestra/netmanager/test/clusterstub"
	"github.com/oakestra/netmanager/test/nstest"
)

// registerAs posts a registration as id (with the underlay's cluster, or
// standalone) and returns the status and the body.
func registerAs(t *testing.T, n *node, id string, withCluster bool) (int, string) {
	t.Helper()
	body := fmt.Sprintf(`{"client_id": %q}`, id)
	if withCluster {
		body = fmt.Sprintf(`{"client_id": %q, "cluster_address": "192.168.77.254"}`, id)
	}
	code, out, err := n.d.Client.Raw(ctx(t), "POST", "/register", []byte(body))
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
	return code, string(out)
}

// kill ends a container's process, as a NodeEngine's restart leaves its
// containers (the namespace stays: the test made it); the process is a
// zombie until the test ends.
func (c *container) kill(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(c.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, c.pid)
}

// deployedBy returns the service/deployed reports of app the cluster got
// from node id.
func deployedBy(m *clusterstub.Manager, id, app string) []cluster.Deployed {
	var out []cluster.Deployed
	for _, msg := range m.Messages("service/deployed") {
		var d cluster.Deployed
		if msg.Node == id && json.Unmarshal(msg.Payload, &d) == nil && d.AppName == app {
			out = append(out, d)
		}
	}
	return out
}

// assertReregistrationLogged finds the daemon's log line of the
// re-registration from old to next that removed removed deployments.
func assertReregistrationLogged(t *testing.T, n *node, old, next string, removed int) {
	t.Helper()
	want := []string{"re-registration", "old_client_id=" + old, "client_id=" + next, fmt.Sprintf("stale_removed=%d", removed)}
	for _, line := range strings.Split(n.d.Log(), "\n") {
		found := 0
		for _, w := range want {
			if strings.Contains(line, w) {
				found++
			}
		}
		if found == len(want) {
			return
		}
	}
	t.Fatalf("no log line with %q in:\n%s", want, n.d.Log())
}

func servicesOf(t *testing.T, n *node) []deploy.Record {
	t.Helper()
	recs, err := n.d.Client.Services(ctx(t))
	if err != nil {
		t.Fatalf("GET /services: %v", err)
	}
	return recs
}

// A NodeEngine restarts (its containers gone with it) and registers under
// the new id the cluster gave it: the node removes the stale deployment,
// leaves the cluster as A, joins as B (200, a new session asking for a
// subnet, which the empty node moves to), and what is deployed next is
// reported under B. Nothing of the stale deployment is left, and the node
// is as it was at its stop.
func TestClusterReregister(t *testing.T) {
	t.Parallel()
	ul, _ := clustersite.NewUnderlay(t)
	m := clustersite.NewManager(t, ul, 2)
	n := underlayNode(t, ul, 1)
	regA := n.register(t, "A")
	old := newContainer(t)
	stale := deployContainer(t, n, old, "app.ns.srv.ns", 0, "18080:80")
	waitUntil(t, "A reports its instance", func() bool { return len(deployedBy(m, "A", "app.ns.srv.ns")) == 1 })
	veth := servicesOf(t, n)[0].HostVeth
	old.kill(t)

	regB := n.register(t, "B")
	if regB["client_id"] != "B" || regB["subnet"] == regA["subnet"] || !strings.HasPrefix(regB["subnet"], regB["clusterSubnet"]+"/") {
		t.Fatalf("re-registration as B: %v (as A: %v); want the cluster's new subnet", regB, regA)
	}
	if recs := servicesOf(t, n); len(recs) != 0 {
		t.Fatalf("the stale deployment is still listed: %+v", recs)
	}
	assertReregistrationLogged(t, n, "A", "B", 1)
	afterB := n.settled(t)
	for _, left := range []string{veth, stale.NsAddress + "/", "18080"} {
		if strings.Contains(afterB, left) {
			t.Fatalf("the stale deployment left %q:\n%s", left, afterB)
		}
	}
	waitUntil(t, "B asks for its subnet", func() bool {
		for _, msg := range m.Messages("subnet") {
			if msg.Node == "B" {
				return true
			}
		}
		return false
	})

	fresh := newContainer(t)
	dep := deployContainer(t, n, fresh, "app.ns.srv.ns", 0, "18080:80")
	waitUntil(t, "B reports the new instance", func() bool { return len(deployedBy(m, "B", "app.ns.srv.ns")) == 1 })
	if d := deployedBy(m, "B", "app.ns.srv.ns")[0]; d.NsIP != dep.NsAddress {
		t.Fatalf("B reported %+v, deployed %+v", d, dep)
	}
	if got := deployedBy(m, "A", "app.ns.srv.ns"); len(got) != 1 {
		t.Fatalf("reports under A after the re-registration: %+v", got)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.srv.ns", 0)
	n.assertState(t, afterB, "after the new deployment's undeploy")
	n.stop(t)
}

// While the previous NodeEngine's container runs, another id is a 409
// naming the node's id and the container, and the node stays registered as
// A (a deploy is still reported under A). Once every container is gone, B
// takes over; given the same subnet, the node is exactly as it was when A
// had registered with nothing deployed.
func TestClusterReregisterRefused(t *testing.T) {
	t.Parallel()
	ul, _ := clustersite.NewUnderlay(t)
	same := cluster.SubnetResult{Address: "10.18.7.0", AddressV6: "fd00:18:7::"}
	m := clusterstub.NewManagerIn(t, ul, clustersite.BrokerAddr, same, same)
	n := underlayNode(t, ul, 1)
	n.register(t, "A")
	clean := n.settled(t)
	live := newContainer(t)
	deployContainer(t, n, live, "app.ns.srv.ns", 0, "")
	code, out := registerAs(t, n, "B", true)
	if code != 409 || !strings.Contains(out, `\"A\"`) || !strings.Contains(out, "instance 0 of app.ns.srv.ns") {
		t.Fatalf("register B while A's container runs: %d %s", code, out)
	}
	for _, msg := range m.Messages("subnet") {
		if msg.Node == "B" {
			t.Fatalf("the refused registration reached the cluster: %+v", msg)
		}
	}
	if code, out := registerAs(t, n, "A", true); code != 200 {
		t.Fatalf("A again: %d %s", code, out)
	}
	second := newContainer(t)
	deployContainer(t, n, second, "app.ns.cli.ns", 0, "")
	waitUntil(t, "A reports both instances", func() bool {
		return len(deployedBy(m, "A", "app.ns.srv.ns")) == 1 && len(deployedBy(m, "A", "app.ns.cli.ns")) == 1
	})

	live.kill(t)
	if code, out := registerAs(t, n, "B", true); code != 409 || !strings.Contains(out, "app.ns.cli.ns") {
		t.Fatalf("register B while one of A's two containers runs: %d %s", code, out)
	}
	second.kill(t)
	if code, out := registerAs(t, n, "B", true); code != 200 || !strings.Contains(out, `"client_id":"B"`) {
		t.Fatalf("register B once A's containers are gone: %d %s", code, out)
	}
	if recs := servicesOf(t, n); len(recs) != 0 {
		t.Fatalf("stale deployments still listed: %+v", recs)
	}
	n.assertState(t, clean, "after the re-registration")
	n.stop(t)
}

// A node registered standalone follows the same rule: a unikernel counts
// as running while a process is in the namespace the NetManager made for
// it, a container while its process exists. Once neither runs, B takes
// over (200): both deployments go, the unikernel's namespace too, the
// saved state is empty, and the node is as it was before the deploys.
func TestReregisterStandalone(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	n := newNode(t, "--state-dir="+state)
	if code, out := registerAs(t, n, "A", false); code != 200 {
		t.Fatalf("register A: %d %s", code, out)
	}
	c := newContainer(t)
	deployContainer(t, n, c, "app.ns.ctr.ns", 0, "")
	svc := "app.ns." + nstest.UniqueName("uk") + ".ns"
	nsName := svc + ".instance.0"
	t.Cleanup(func() {
		if _, err := os.Stat("/run/netns/" + nsName); err == nil {
			nstest.DeleteNetns(t, nsName)
		}
	})
	zero := 0
	if _, err := n.d.Client.Deploy(ctx(t), deploy.KindUnikernel, api.DeployBody{ServiceName: svc, InstanceNumber: &zero}); err != nil {
		t.Fatalf("deploy the unikernel: %v", err)
	}
	vm := &container{ns: &nstest.Netns{Name: nsName}}
	vm.pid = vm.ns.StartProcess(t) // the NodeEngine's qemu or crosvm
	c.kill(t)
	if code, out := registerAs(t, n, "B", false); code != 409 || !strings.Contains(out, `\"A\"`) || !strings.Contains(out, svc) {
		t.Fatalf("register B while the unikernel runs: %d %s", code, out)
	}
	if recs := servicesOf(t, n); len(recs) != 2 {
		t.Fatalf("a refused registration removed deployments: %+v", recs)
	}
	vm.kill(t)
	if code, out := registerAs(t, n, "B", false); code != 200 || !strings.Contains(out, `"mode":"standalone"`) {
		t.Fatalf("register B once nothing runs: %d %s", code, out)
	}
	if recs := servicesOf(t, n); len(recs) != 0 {
		t.Fatalf("stale deployments still listed: %+v", recs)
	}
	assertReregistrationLogged(t, n, "A", "B", 2)
	if _, err := os.Stat("/run/netns/" + nsName); err == nil {
		t.Fatalf("the stale unikernel's namespace %s is left", nsName)
	}
	saved, err := os.ReadFile(filepath.Join(state, "services.json"))
	if err != nil || strings.TrimSpace(string(saved)) != "[]" {
		t.Fatalf("saved state after the re-registration: %q %v", saved, err)
	}
	n.assertState(t, n.ready, "after the re-registration")
	if code, out := registerAs(t, n, "B", false); code != 200 {
		t.Fatalf("B again: %d %s", code, out)
	}
	n.stop(t)
}
