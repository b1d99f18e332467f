package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/deploy"
)

// Every bad request gets its 4xx with a message naming the problem, and the node
// is exactly as it was before the request.
func TestBadInputLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	good := newContainer(t)
	other := newContainer(t)
	deployContainer(t, n, good, "app.ns.taken.ns", 0, "18080:80")
	before := n.settled(t)

	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	deadPID := gone.Process.Pid

	cases := []struct {
		name, path, body string
		code             int
		text             string
	}{
		{"malformed JSON", "/container/deploy", `{"pid": 1,`, 400, "malformed JSON"},
		{"wrong type", "/container/deploy", fmt.Sprintf(`{"pid": "%d", "serviceName": "app.ns.x.ns", "instanceNumber": 0}`, other.pid), 400, `"pid" must be of type int`},
		{"name with three parts", "/container/deploy", fmt.Sprintf(`{"pid": %d, "serviceName": "app.x.ns", "instanceNumber": 0}`, other.pid), 400, "four dot-separated parts"},
		{"name with a slash", "/container/deploy", fmt.Sprintf(`{"pid": %d, "serviceName": "app.ns.../x.ns", "instanceNumber": 0}`, other.pid), 400, "serviceName"},
		{"pid that does not exist", "/container/deploy", fmt.Sprintf(`{"pid": %d, "serviceName": "app.ns.x.ns", "instanceNumber": 0}`, deadPID), 400, "does not exist"},
		{"pid in the node's namespace", "/container/deploy", fmt.Sprintf(`{"pid": %d, "serviceName": "app.ns.x.ns", "instanceNumber": 0}`, n.d.PID()), 400, "shares the NetManager's network namespace"},
		{"second deploy of an instance", "/container/deploy", fmt.Sprintf(`{"pid": %d, "serviceName": "app.ns.taken.ns", "instanceNumber": 0}`, other.pid), 409, "already deployed"},
		{"host port taken", "/container/deploy", fmt.Sprintf(`{"pid": %d, "serviceName": "app.ns.x.ns", "instanceNumber": 0, "portMappings": "18080:81"}`, other.pid), 409, "host port 18080/tcp"},
		{"bad port mapping", "/container/deploy", fmt.Sprintf(`{"pid": %d, "serviceName": "app.ns.x.ns", "instanceNumber": 0, "portMappings": "80:0"}`, other.pid), 400, "portMappings"},
		{"SLA module not installed", "/container/deploy", fmt.Sprintf(`{"pid": %d, "serviceName": "app.ns.x.ns", "instanceNumber": 0, "ebpfModules": [{"name": "nosuch"}]}`, other.pid), 404, "not installed"},
		{"SLA module that fails to load", "/container/deploy", fmt.Sprintf(`{"pid": %d, "serviceName": "app.ns.x.ns", "instanceNumber": 0, "ebpfModules": [{"name": "badverifier"}]}`, other.pid), 422, "verifier"},
		{"SLA module config not an object", "/container/deploy", fmt.Sprintf(`{"pid": %d, "serviceName": "app.ns.x.ns", "instanceNumber": 0, "ebpfModules": [{"name": "packetcounter", "config": 3}]}`, other.pid), 400, "JSON object"},
		{"undeploy of an unknown instance", "/container/undeploy", `{"pid": -1, "serviceName": "app.ns.nobody.ns", "instanceNumber": 0}`, 404, "not deployed"},
		{"undeploy with the wrong kind", "/unikernel/undeploy", `{"serviceName": "app.ns.taken.ns", "instanceNumber": 0}`, 409, "deployed as a container"},
	}
	for _, c := range cases {
		status, body, err := n.d.Client.Raw(ctx(t), http.MethodPost, c.path, []byte(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var eb struct{ Error string }
		_ = json.Unmarshal(body, &eb)
		if status != c.code || !strings.Contains(eb.Error, c.text) {
			t.Errorf("%s: got %d %s, want %d containing %q", c.name, status, body, c.code, c.text)
		}
		n.assertState(t, before, c.name)
	}
	if _, err := other.ns.Exec("ip", "link", "show", "eth0"); err == nil {
		t.Fatal("a refused deploy left eth0 in the container")
	}
	recs, _ := n.d.Client.Services(ctx(t))
	if len(recs) != 1 {
		t.Fatalf("services after refused requests: %+v", recs)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.taken.ns", 0)
	n.stop(t)
}

// The snapshot used to prove "nothing left behind" must itself see leftovers.
func TestSnapshotSeesLeftovers(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	for _, mk := range [][]string{
		{"ip", "link", "add", "stray0", "type", "veth", "peer", "name", "stray1"},
		{"iptables", "-t", "nat", "-A", "NETMANAGER-DNAT", "-p", "tcp", "--dport", "1", "-j", "DNAT", "--to-destination", "10.18.0.9:1"},
		{"ip", "route", "add", "192.0.2.0/24", "via", "10.18.0.9"},
		{"ip", "addr", "add", "10.18.0.77/24", "dev", "goProxyBridge"},
	} {
		n.ns.MustExec(t, mk...)
		if got := n.ns.Snapshot(t); got == n.ready {
			t.Fatalf("snapshot did not change after %v", mk)
		}
	}
	n.ns.MustExec(t, "ip", "link", "del", "stray0")
	n.ns.MustExec(t, "ip", "route", "del", "192.0.2.0/24")
	n.ns.MustExec(t, "ip", "addr", "del", "10.18.0.77/24", "dev", "goProxyBridge")
	n.stop(t) // the daemon flushes its own chains, the stray rule with them
}
