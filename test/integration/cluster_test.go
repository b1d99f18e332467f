package integration

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/test/clusterstub"
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
// default port) and the stand-in cluster manager: the cluster gives the
// subnet, and every instance the node deploys, before and after, is
// reported with the fields the cluster stores.
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
	if err != nil || code != 200 || reg["mode"] != "cluster" || reg["subnet"] != "10.18.7.0" || reg["subnetv6"] != "fd00:18:7::" {
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
