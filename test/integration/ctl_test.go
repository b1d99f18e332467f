package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/test/nstest"
)

// netmanagerctl against a real daemon: every command with its default
// output and with -o json, the JSON checked against what the command did.

// ctlResult is one netmanagerctl run.
type ctlResult struct {
	rc        int
	out, errs string
	args      []string
}

// runCtlBin runs netmanagerctl with args (prefix: e.g. ip netns exec NS),
// stdin from in (nil: none).
func runCtlBin(t *testing.T, prefix []string, in io.Reader, args ...string) ctlResult {
	t.Helper()
	argv := append(append(append([]string{}, prefix...), ctlBin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	var out, errs bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, &out, &errs
	err := cmd.Run()
	r := ctlResult{out: out.String(), errs: errs.String(), args: args}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.rc = ee.ExitCode()
	case err != nil:
		t.Fatalf("run netmanagerctl %q: %v", args, err)
	}
	return r
}

// ctl runs netmanagerctl against n's daemon (its unix socket).
func ctl(t *testing.T, n *node, args ...string) ctlResult {
	t.Helper()
	return runCtlBin(t, nil, nil, append([]string{"--socket", n.d.Socket}, args...)...)
}

// ok fails the test unless the run succeeded with stdout holding each of want.
func (r ctlResult) ok(t *testing.T, want ...string) string {
	t.Helper()
	if r.rc != 0 || r.errs != "" {
		t.Fatalf("netmanagerctl %q: exit %d, stderr %q, stdout\n%s", r.args, r.rc, r.errs, r.out)
	}
	for _, w := range want {
		if !strings.Contains(r.out, w) {
			t.Fatalf("netmanagerctl %q: stdout lacks %q:\n%s", r.args, w, r.out)
		}
	}
	return r.out
}

// fails fails the test unless the run exited rc with stderr holding each of want.
func (r ctlResult) fails(t *testing.T, rc int, want ...string) {
	t.Helper()
	if r.rc != rc || r.out != "" {
		t.Fatalf("netmanagerctl %q: exit %d (want %d), stdout %q, stderr %q", r.args, r.rc, rc, r.out, r.errs)
	}
	for _, w := range want {
		if !strings.Contains(r.errs, w) {
			t.Fatalf("netmanagerctl %q: stderr lacks %q: %q", r.args, w, r.errs)
		}
	}
}

// decode parses a successful run's stdout as JSON into v.
func (r ctlResult) decode(t *testing.T, v any) {
	t.Helper()
	r.ok(t)
	if err := json.Unmarshal([]byte(r.out), v); err != nil {
		t.Fatalf("netmanagerctl %q: stdout is not the JSON expected (%v):\n%s", r.args, err, r.out)
	}
}

// ctlJSON runs a command with -o json and decodes its output into v.
func ctlJSON(t *testing.T, n *node, v any, args ...string) {
	t.Helper()
	ctl(t, n, append(args, "-o", "json")...).decode(t, v)
}

// instanceIn finds a service instance in a services list.
func instanceIn(recs []deploy.Record, name string, inst int) *deploy.Record {
	for i := range recs {
		if recs[i].ServiceName == name && recs[i].Instance == inst {
			return &recs[i]
		}
	}
	return nil
}

// health, version, register, services, deploy and undeploy (container and
// unikernel), proxy, metrics and openapi; the exit codes of a refusal, a
// usage error and a daemon not there.
func TestCtlNodeCommands(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	ctl(t, n, "health").ok(t, "ok\n")
	var health map[string]string
	ctlJSON(t, n, &health, "health")
	if health["status"] != "ok" {
		t.Fatalf("health -o json: %v", health)
	}
	v := strings.TrimSpace(ctl(t, n, "version").ok(t))
	var ver struct {
		Version, Go string
		Kernel      struct {
			Release  string
			Features map[string]bool
		}
	}
	ctlJSON(t, n, &ver, "version")
	if v == "" || ver.Version != v || !strings.HasPrefix(ver.Go, "go") || ver.Kernel.Release == "" || !ver.Kernel.Features["bpf_loop"] {
		t.Fatalf("version %q, -o json %+v", v, ver)
	}
	ctl(t, n, "register", "--client-id", "ctl-node").ok(t, "client_id", "ctl-node", "standalone")
	var reg api.Registration
	ctlJSON(t, n, &reg, "register", "--client-id", "ctl-node")
	if reg.ClientID != "ctl-node" || reg.Mode != "standalone" {
		t.Fatalf("register -o json: %+v", reg)
	}
	// Nothing runs here: another id is a restarted NodeEngine's, and
	// re-registers; with an instance running (ctlDeployUndeploy) it is 409.
	ctl(t, n, "register", "--client-id", "another").ok(t, "client_id", "another", "standalone")
	ctl(t, n, "register", "--client-id", "ctl-node").ok(t, "client_id", "ctl-node", "standalone")

	ctlDeployUndeploy(t, n)
	ctlProxyMetricsOpenAPI(t, n)

	ctl(t, n, "modules", "show", "999").fails(t, 3, "netmanagerctl: HTTP 404: ", `no module instance "999"`)
	ctl(t, n, "undeploy", "--service", "app.ns.never.ns", "--instance", "4").fails(t, 3, "HTTP 404")
	ctl(t, n, "modules", "show").fails(t, 2, "missing arguments: ID")
	ctl(t, n, "deploy", "--service", "app.ns.x.ns").fails(t, 2, "deploy needs --pid")
	ctl(t, n, "frobnicate").fails(t, 2, `unknown command "frobnicate"`)
	r := runCtlBin(t, nil, nil, "--socket", filepath.Join(t.TempDir(), "gone.sock"), "services")
	r.fails(t, 1, "cannot reach the NetManager at unix socket")
	n.assertState(t, n.ready, "after the CLI's node commands")
	n.stop(t)
}

// ctlDeployUndeploy deploys a container and a unikernel, finds both in
// services (table and JSON), and undeploys them.
func ctlDeployUndeploy(t *testing.T, n *node) {
	t.Helper()
	c := newContainer(t)
	out := ctl(t, n, "deploy", "--service", "app.ns.ctl.ns", "--instance", "1", "--pid", fmt.Sprint(c.pid), "--ports", "18090:80/udp").
		ok(t, "app.ns.ctl.ns instance 1: 10.18.0.")
	var dep api.DeployResponse
	ctlJSON(t, n, &dep, "deploy", "--service", "app.ns.ctl.ns", "--instance", "1", "--pid", fmt.Sprint(c.pid), "--ports", "18090:80/udp")
	if dep.ServiceName != "app.ns.ctl.ns" || !strings.Contains(out, dep.NsAddress+" ") || dep.NsAddressV6 == "" {
		t.Fatalf("deploy again (the same answer): %+v, first %q", dep, out)
	}
	// Named namespaces are machine-wide: a unique service name keeps parallel runs apart.
	uksvc := "app.ns." + nstest.UniqueName("uk") + ".ns"
	t.Cleanup(func() { nstest.DeleteNetns(t, uksvc+".instance.0") })
	ctlJSON(t, n, &dep, "deploy", "--unikernel", "--service", uksvc, "--instance", "0")
	ukAddr := dep.NsAddress
	ctl(t, n, "services").ok(t, "app.ns.ctl.ns", "18090:80/udp", "round_robin=10.30.", uksvc, "unikernel", ukAddr)
	ctl(t, n, "register", "--client-id", "another").fails(t, 3, "HTTP 409", `already registered as "ctl-node"`)
	for _, flag := range []string{"-o", "--json"} {
		args := []string{"services", flag}
		if flag == "-o" {
			args = append(args, "json")
		}
		var recs []deploy.Record
		ctl(t, n, args...).decode(t, &recs)
		ctr, uk := instanceIn(recs, "app.ns.ctl.ns", 1), instanceIn(recs, uksvc, 0)
		if len(recs) != 2 || ctr == nil || uk == nil || ctr.PID != c.pid || ctr.NsAddress.String() != strings.Fields(out)[3] ||
			len(ctr.PortMappings) != 1 || ctr.PortMappings[0].HostPort != 18090 || uk.Kind != deploy.KindUnikernel || uk.NsAddress.String() != ukAddr {
			t.Fatalf("services %s: %+v", flag, recs)
		}
	}
	assertPing(t, &nstest.Netns{Name: uksvc + ".instance.0"}, strings.Fields(out)[3]) // both are wired
	ctl(t, n, "undeploy", "--unikernel", "--service", uksvc, "--instance", "0").ok(t, uksvc+" instance 0: undeployed")
	var und map[string]any
	ctlJSON(t, n, &und, "undeploy", "--service", "app.ns.ctl.ns", "--instance", "1")
	if und["serviceName"] != "app.ns.ctl.ns" || und["instanceNumber"] != 1.0 {
		t.Fatalf("undeploy -o json: %v", und)
	}
	var recs []deploy.Record
	ctlJSON(t, n, &recs, "services")
	if len(recs) != 0 {
		t.Fatalf("services after the undeploys: %+v", recs)
	}
	ctl(t, n, "services").ok(t, "SERVICE")
}

// ctlProxyMetricsOpenAPI: the user-space proxy's state, the metrics text
// and the OpenAPI document.
func ctlProxyMetricsOpenAPI(t *testing.T, n *node) {
	t.Helper()
	var px struct {
		Enabled bool
		Tun     string
		Stats   map[string]any
	}
	ctl(t, n, "proxy", "-o", "json").decode(t, &px)
	if !px.Enabled || px.Tun == "" || px.Stats["translated"] == nil {
		t.Fatalf("proxy: %+v", px)
	}
	ctl(t, n, "proxy").ok(t, "enabled", "true", "tun", px.Tun, "translated")

	r := ctl(t, n, "metrics")
	if r.rc == 3 && strings.Contains(r.errs, "HTTP 404") {
		t.Errorf("GET /metrics is missing from the daemon (404): netmanagerctl metrics has nothing to print: %s", r.errs)
	} else if out := r.ok(t, "# TYPE "); !strings.Contains(out, "# HELP ") {
		t.Errorf("metrics: not the Prometheus text format:\n%s", out)
	}
	r = ctl(t, n, "openapi")
	if r.rc == 3 && strings.Contains(r.errs, "HTTP 404") {
		t.Errorf("GET /openapi.json is missing from the daemon (404): netmanagerctl openapi has nothing to print: %s", r.errs)
		return
	}
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	r.decode(t, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Paths["/ebpf"] == nil || doc.Paths["/container/deploy"] == nil {
		t.Errorf("openapi: version %q, %d paths", doc.OpenAPI, len(doc.Paths))
	}
}

// ctlModulesDir is the modules built with the daemon under test: next to
// NETMANAGER_BIN's bin directory when there are any (a build of one's own,
// e.g. make build BUILD=/tmp/x), else the checkout's build/modules. Go
// plugins load only into the daemon they were built with.
func ctlModulesDir() string {
	if bin := os.Getenv("NETMANAGER_BIN"); bin != "" {
		dir := filepath.Join(filepath.Dir(filepath.Dir(bin)), "modules")
		if _, err := os.Stat(filepath.Join(dir, "firewall", "firewall.so")); err == nil {
			return dir
		}
	}
	return modulesDir
}
