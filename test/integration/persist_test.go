package integration

import (
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/table"
	"github.com/oakestra/netmanager/test/nstest"
)

// With persist, stopping the daemon leaves services running, and the next
// start takes them back: same addresses, port mappings and service IPs; a
// service whose container exited meanwhile is cleaned up instead.
func TestPersistAcrossRestart(t *testing.T) {
	t.Parallel()
	state := "--state-dir=" + t.TempDir()
	n := newNode(t, state, "--persist")
	pins := n.d.PinDir
	a, b, c := newContainer(t), newContainer(t), newContainer(t)
	ra := deployContainer(t, n, a, "app.ns.alpha.ns", 0, "")
	rb := deployContainer(t, n, b, "app.ns.beta.ns", 0, "18090:8080")
	deployContainer(t, n, c, "app.ns.gone.ns", 0, "")
	serveEcho(t, b.ns, "tcp", ":8080")
	serveName(t, b.ns, "9000", "beta")
	rr := serviceIP(t, n, "app.ns.beta.ns", 0, table.PolicyRoundRobin)

	n.d.Stop(t)
	if out := n.ns.MustExec(t, "ip", "-br", "link"); !strings.Contains(out, "oak") || !strings.Contains(out, "goProxyBridge") {
		t.Fatalf("persist removed the services:\n%s", out)
	}
	assertPing(t, a.ns, rb.NsAddress) // the kernel keeps forwarding without the daemon
	if err := syscall.Kill(c.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	nstest.DeleteNetns(t, c.ns.Name)

	n.d = nstest.StartDaemon(t, netmanagerBin, n.ns, "--modules-dir", modulesDir, state, "--persist", "--pin-dir", pins)
	recs, err := n.d.Client.Services(ctx(t))
	if err != nil || len(recs) != 2 {
		t.Fatalf("re-adopted services: %+v %v", recs, err)
	}
	if recs[0].NsAddress.String() != ra.NsAddress || recs[1].NsAddress.String() != rb.NsAddress {
		t.Fatalf("addresses changed: %+v", recs)
	}
	if got := serviceIP(t, n, "app.ns.beta.ns", 0, table.PolicyRoundRobin); got != rr {
		t.Fatalf("service IP %s, was %s", got, rr)
	}
	assertEcho(t, n.ns, "tcp4", "10.18.0.1:18090") // the port mapping is back
	if name, err := ask(a, "tcp4", net.JoinHostPort(rr, "9000")); err != nil || name != "beta" {
		t.Fatalf("service IP after the restart: %q %v", name, err)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.alpha.ns", 0)
	undeploy(t, n, deploy.KindContainer, "app.ns.beta.ns", 0)
	n.d.Stop(t)
	// A start without persist takes the bridge and rules back and removes them at its stop.
	n.d = nstest.StartDaemon(t, netmanagerBin, n.ns, "--modules-dir", modulesDir, state, "--pin-dir", pins)
	n.stop(t)
	if _, err := os.Stat(pins); err == nil {
		t.Fatalf("pin dir %s left", pins)
	}
}
