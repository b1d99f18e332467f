package integration

import (
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/test/nstest"
)

func TestTwoServicesReachEachOther(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	a, b := newContainer(t), newContainer(t)
	ra := deployContainer(t, n, a, "app.ns.alpha.ns", 0, "")
	rb := deployContainer(t, n, b, "app.ns.beta.ns", 0, "")
	if ra.ServiceName != "app.ns.alpha.ns" || ra.NsAddress == "" || ra.NsAddressV6 == "" || ra.NsAddress == rb.NsAddress {
		t.Fatalf("deploy responses: %+v %+v", ra, rb)
	}

	// The peer is eth0 inside the container, with both addresses and default routes.
	inside := a.ns.MustExec(t, "ip", "-br", "addr", "show", "eth0")
	if !strings.Contains(inside, ra.NsAddress+"/24") || !strings.Contains(inside, ra.NsAddressV6+"/64") {
		t.Fatalf("eth0 in container: %s", inside)
	}
	if r := a.ns.MustExec(t, "ip", "route", "show", "default"); !strings.Contains(r, "via 10.18.0.1 dev eth0") {
		t.Fatalf("default route: %s", r)
	}

	assertPing(t, a.ns, rb.NsAddress)
	assertPing(t, b.ns, ra.NsAddress)
	assertPing(t, a.ns, rb.NsAddressV6)
	serveEcho(t, b.ns, "tcp", ":7000")
	assertEcho(t, a.ns, "tcp4", net.JoinHostPort(rb.NsAddress, "7000"))
	assertEcho(t, a.ns, "tcp6", net.JoinHostPort(rb.NsAddressV6, "7000"))

	recs, err := n.d.Client.Services(ctx(t))
	if err != nil || len(recs) != 2 {
		t.Fatalf("services: %+v %v", recs, err)
	}
	for _, r := range recs {
		if out := n.ns.MustExec(t, "ip", "-d", "link", "show", r.HostVeth); !strings.Contains(out, "master goProxyBridge") || !strings.Contains(out, "alias netmanager:svc:"+r.ServiceName) {
			t.Fatalf("host veth %s: %s", r.HostVeth, out)
		}
		if len(r.ServiceIPs) != 4 || !r.ServiceIPs[2].Address.Is6() || r.Peer != "eth0" || r.HostIfindex == 0 {
			t.Fatalf("record: %+v", r)
		}
	}

	undeploy(t, n, deploy.KindContainer, "app.ns.alpha.ns", 0)
	undeploy(t, n, deploy.KindContainer, "app.ns.beta.ns", 0)
	n.assertState(t, n.ready, "after undeploying both")
	if out, _ := a.ns.Exec("ip", "link", "show", "eth0"); !strings.Contains(out, "does not exist") {
		t.Fatalf("eth0 still in container: %s", out)
	}
	n.stop(t)
}

func TestPortMappingsReachTheService(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	c := newContainer(t)
	deployContainer(t, n, c, "app.ns.web.ns", 0, "18080:8080/tcp")
	serveEcho(t, c.ns, "tcp", ":8080")
	// From the node itself, to the node's own addresses on the mapped port.
	assertEcho(t, n.ns, "tcp4", "10.18.0.1:18080")
	assertEcho(t, n.ns, "tcp6", "[fd00:18::1]:18080")
	undeploy(t, n, deploy.KindContainer, "app.ns.web.ns", 0)
	n.assertState(t, n.ready, "after undeploy")
	if _, err := echo(n.ns, "tcp4", "10.18.0.1:18080"); err == nil {
		t.Fatal("mapped port still answers after undeploy")
	}
	n.stop(t)
}

// A unikernel's namespace is made as the NodeEngine expects it, and removed
// whole on undeploy.
func TestUnikernelNamespaceIsMadeAndRemoved(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	c := newContainer(t)
	rc := deployContainer(t, n, c, "app.ns.client.ns", 0, "")
	// Named namespaces are machine-wide: a unique service name keeps parallel runs apart.
	svc := "app.ns." + nstest.UniqueName("uk") + ".ns"
	nsName := svc + ".instance.1"
	t.Cleanup(func() { nstest.DeleteNetns(t, nsName) })
	inst := 1
	resp, err := n.d.Client.Deploy(ctx(t), deploy.KindUnikernel, api.DeployBody{ServiceName: svc, InstanceNumber: &inst})
	if err != nil {
		t.Fatalf("unikernel deploy: %v", err)
	}
	uk := &nstest.Netns{Name: nsName}
	if out := uk.MustExec(t, "ip", "-br", "addr", "show", "eth0"); !strings.Contains(out, resp.NsAddress+"/24") {
		t.Fatalf("unikernel namespace eth0: %s", out)
	}
	// What the NodeEngine looks for: tap0 (its MAC goes to crosvm or qemu) on
	// virbr0, 192.168.1.1/30 the guest's gateway, and NAT between the guest
	// (192.168.1.2) and eth0.
	if out := uk.MustExec(t, "ip", "-d", "link", "show", "tap0"); !strings.Contains(out, "master virbr0") || !strings.Contains(out, "tun type tap") {
		t.Fatalf("tap0 in the unikernel namespace: %s", out)
	}
	if out := uk.MustExec(t, "ip", "-br", "addr", "show", "virbr0"); !strings.Contains(out, "192.168.1.1/30") {
		t.Fatalf("virbr0: %s", out)
	}
	nat := uk.MustExec(t, "iptables", "-t", "nat", "-S")
	for _, rule := range []string{"-A POSTROUTING -o eth0 -j SNAT --to-source " + resp.NsAddress, "-A PREROUTING -i eth0 -j DNAT --to-destination 192.168.1.2"} {
		if !strings.Contains(nat, rule) {
			t.Fatalf("unikernel NAT lacks %q:\n%s", rule, nat)
		}
	}
	assertPing(t, uk, rc.NsAddress) // the namespace's own traffic (the guest's is NATed to it)
	undeploy(t, n, deploy.KindUnikernel, svc, inst)
	if _, err := os.Stat(uk.Path()); err == nil {
		t.Fatalf("namespace %s left after undeploy", nsName)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.client.ns", 0)
	n.assertState(t, n.ready, "after undeploy")
	n.stop(t)
}

func TestContainerGoneBeforeUndeploy(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	c := newContainer(t)
	deployContainer(t, n, c, "app.ns.gone.ns", 0, "9000:9000/udp")
	// The container dies and its namespace goes: the veth pair goes with it.
	if err := syscall.Kill(c.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	nstest.DeleteNetns(t, c.ns.Name)
	undeploy(t, n, deploy.KindContainer, "app.ns.gone.ns", 0)
	n.assertStateEventually(t, n.ready, "after undeploying a vanished container")
	n.stop(t)
}
