package integration

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/test/nstest"
)

// After a crash, the next daemon removes the dead one's service veths, adopts
// its bridge and flushes its chains; its own shutdown then leaves a clean node.
func TestRestartAfterCrashCleansUp(t *testing.T) {
	t.Parallel()
	state := "--state-dir=" + t.TempDir()
	n := newNode(t, state)
	c := newContainer(t)
	deployContainer(t, n, c, "app.ns.crash.ns", 0, "18081:80")
	uk := "app.ns." + nstest.UniqueName("uk") + ".ns"
	inst := 0
	if _, err := n.d.Client.Deploy(ctx(t), deploy.KindUnikernel, api.DeployBody{ServiceName: uk, InstanceNumber: &inst}); err != nil {
		t.Fatal(err)
	}
	ukNetns := uk + ".instance.0"
	t.Cleanup(func() { nstest.DeleteNetns(t, ukNetns) })
	loadModule(t, n, `{"name": "packetcounter"}`)
	n.d.Kill(t)
	if out := n.ns.MustExec(t, "ip", "link", "show"); !strings.Contains(out, "oak") {
		t.Fatalf("expected the crashed daemon's veth to remain: %s", out)
	}
	n.d = nstest.StartDaemon(t, netmanagerBin, n.ns, state, "--pin-dir", n.d.PinDir)
	n.assertState(t, n.ready, "after restart")
	if entries, _ := os.ReadDir(n.d.PinDir); len(entries) != 0 {
		t.Fatalf("the crashed run's pins were kept: %v", entries)
	}
	if _, err := os.Stat("/run/netns/" + ukNetns); err == nil {
		t.Fatalf("the crashed run's unikernel namespace %s was kept", ukNetns)
	}
	if !strings.Contains(n.d.Log(), "left over from an earlier run") || !strings.Contains(n.d.Log(), "pins left over") {
		t.Fatalf("restart did not report the sweep:\n%s", n.d.Log())
	}
	r2 := deployContainer(t, n, c, "app.ns.crash.ns", 0, "18081:80")
	assertPing(t, n.ns, r2.NsAddress)
	undeploy(t, n, deploy.KindContainer, "app.ns.crash.ns", 0)
	n.stop(t)
}

// Concurrent deploys and undeploys are safe: distinct addresses, no errors,
// nothing left.
func TestConcurrentDeploys(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	const count = 8
	ctrs := make([]*container, count)
	for i := range ctrs {
		ctrs[i] = newContainer(t)
	}
	addrs := make([]string, count)
	var wg sync.WaitGroup
	errs := make(chan error, count)
	for i := range ctrs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			pid := ctrs[i].pid
			resp, err := n.d.Client.Deploy(ctx(t), deploy.KindContainer, apiBody(pid, "app.ns.par.ns", i))
			addrs[i] = resp.NsAddress
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] || !netip.MustParsePrefix("10.18.0.0/24").Contains(netip.MustParseAddr(a)) {
			t.Fatalf("addresses %v", addrs)
		}
		seen[a] = true
	}
	assertPing(t, ctrs[0].ns, addrs[count-1])
	errs = make(chan error, count)
	for i := range ctrs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- n.d.Client.Undeploy(ctx(t), deploy.KindContainer, "app.ns.par.ns", i)
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	n.assertState(t, n.ready, "after concurrent undeploys")
	n.stop(t)
}

// Shutdown with services still deployed removes them too.
func TestShutdownRemovesDeployedServices(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	c := newContainer(t)
	deployContainer(t, n, c, "app.ns.left.ns", 0, "18082:80/udp")
	n.stop(t)
	if _, err := c.ns.Exec("ip", "link", "show", "eth0"); err == nil {
		t.Fatal("container still has eth0 after the NetManager stopped")
	}
}

// netmanagerctl drives the same API.
func TestCLI(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	c := newContainer(t)
	ctl := func(args ...string) (string, error) {
		out, err := exec.Command(ctlBin, append([]string{"--socket", n.d.Socket}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := ctl("health"); err != nil || strings.TrimSpace(out) != "ok" {
		t.Fatalf("health: %q %v", out, err)
	}
	out, err := ctl("deploy", "--service", "app.ns.cli.ns", "--instance", "3", "--pid", fmt.Sprint(c.pid), "--ports", "18083:80")
	if err != nil || !strings.Contains(out, "app.ns.cli.ns instance 3: 10.18.0.") {
		t.Fatalf("deploy: %q %v", out, err)
	}
	out, err = ctl("services")
	if err != nil || !strings.Contains(out, "app.ns.cli.ns") || !strings.Contains(out, "18083:80/tcp") || !strings.Contains(out, "round_robin=10.30.") {
		t.Fatalf("services: %q %v", out, err)
	}
	out, err = ctl("deploy", "--service", "app.ns.cli.ns", "--instance", "3", "--pid", fmt.Sprint(c.pid))
	if err == nil || !strings.Contains(out, "HTTP 409") {
		t.Fatalf("second deploy: %q %v", out, err)
	}
	out, err = ctl("modules", "load", "packetcounter", "--priority", "7", "--config", `{"maxInterfaces": 16}`)
	if err != nil || !strings.Contains(out, "loaded packetcounter as instance 1 (priority 7, 2 attachments, tcx)") {
		t.Fatalf("modules load: %q %v", out, err)
	}
	if out, err = ctl("modules", "list"); err != nil || !strings.Contains(out, "packetcounter") || !strings.Contains(out, "running") {
		t.Fatalf("modules list: %q %v", out, err)
	}
	if out, err = ctl("modules", "get", "1", "/counts"); err != nil || !strings.Contains(out, `"ingress"`) {
		t.Fatalf("modules get: %q %v", out, err)
	}
	if out, err = ctl("modules", "show", "1", "-o", "json"); err != nil || !strings.Contains(out, `"programId"`) {
		t.Fatalf("modules show: %q %v", out, err)
	}
	if out, err = ctl("modules", "load", "nosuch"); err == nil || !strings.Contains(out, "HTTP 404") {
		t.Fatalf("modules load nosuch: %q %v", out, err)
	}
	if out, err = ctl("modules", "delete", "1"); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("modules delete: %q %v", out, err)
	}
	if out, err := ctl("undeploy", "--service", "app.ns.cli.ns", "--instance", "3"); err != nil {
		t.Fatalf("undeploy: %q %v", out, err)
	}
	if out, err := ctl("proxy", "-o", "json"); err != nil || !strings.Contains(out, `"enabled": true`) {
		t.Fatalf("proxy: %q %v", out, err)
	}
	if out, err := ctl("frobnicate"); err == nil || !strings.Contains(out, "unknown command") {
		t.Fatalf("unknown command: %q %v", out, err)
	}
	n.assertState(t, n.ready, "after CLI undeploy")
	n.stop(t)
}
