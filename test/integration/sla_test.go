package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/events"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

// slaConfig is the operator's policy the tests start the daemon with.
const slaConfig = `{"sla": {"modules": {"proxy": {"forbiddenKeys": ["serviceRange", "serviceRangeV6"]}, "packetcounter": {}, "dropmark": {}},
  "maxInstances": 2, "maxMapBytes": 16777216}}`

// slaNode starts a daemon whose config file holds slaConfig.
func slaNode(t *testing.T, args ...string) *node {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "netmanager.json")
	if err := os.WriteFile(cfg, []byte(slaConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	return newNode(t, append([]string{"--config", cfg}, args...)...)
}

// An SLA module ends the chain (the proxy redirects) on its service's veths;
// the operator's firewall, loaded after it at a higher priority number,
// still runs first there and denies the service's ICMP, with TCX links and
// with legacy tc filters.
func TestSLAAfterOperatorModules(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"tcx", "legacy"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			slaAfterOperator(t, slaNode(t, "--tc-mode", mode))
		})
	}
}

func slaAfterOperator(t *testing.T, n *node) {
	sla := []events.Module{{Name: "proxy", Config: json.RawMessage(`{}`)}}
	var cs [2]*container
	for i := range cs {
		cs[i] = newContainer(t)
		body := apiBody(cs[i].pid, "app.ns.guarded.ns", i)
		body.EbpfModules = sla
		if _, err := n.d.Client.Deploy(ctx(t), deploy.KindContainer, body); err != nil {
			t.Fatal(err)
		}
	}
	peer := serviceIP(t, n, "app.ns.guarded.ns", 1, table.PolicyInstance)
	// The SLA proxy alone: instance 0 reaches instance 1 by its instance IP.
	assertPing(t, cs[0].ns, peer)
	fw := loadModule(t, n, `{"name": "firewall", "priority": 900, "services": ["app.ns.guarded.ns"],
	  "config": {"rules": [{"id": "noping", "action": "deny", "direction": "egress", "proto": "icmp"}]}}`)
	pingMarked(t, cs[0], peer, 2, "", true)
	var rules []struct {
		ID   string
		Hits uint64
	}
	getJSON(t, n, "/ebpf/"+fw.ID+"/rules", &rules)
	if len(rules) != 1 || rules[0].Hits < 2 {
		t.Fatalf("the firewall never saw the pings: %+v", rules)
	}
	if err := n.d.Client.Do(ctx(t), http.MethodDelete, "/ebpf/"+fw.ID, nil, nil); err != nil {
		t.Fatal(err)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.guarded.ns", 0)
	undeploy(t, n, deploy.KindContainer, "app.ns.guarded.ns", 1)
	n.assertState(t, n.ready, "after the SLA services")
	n.stop(t)
}

// A deploy whose SLA the operator's policy refuses is a 422 naming the rule,
// and leaves the node as it was: no veth, no module instance, no pin.
func TestSLARefusals(t *testing.T) {
	t.Parallel()
	n := slaNode(t)
	c := newContainer(t)
	before := n.settled(t)
	cases := []struct {
		name, mods, text string
	}{
		{"module not allowed", `[{"name": "firewall", "config": {}}]`,
			`ebpfModules[0]: cannot be processed: module "firewall" is not allowed for tenants (sla.modules)`},
		{"forbidden config key", `[{"name": "proxy", "config": {"serviceRange": "10.0.0.0/8"}}]`,
			`config key "serviceRange" of module "proxy" is the operator's (sla.modules.proxy.forbiddenKeys)`},
		{"map memory", `[{"name": "packetcounter", "config": {"maxInterfaces": 262144}}]`,
			`module "packetcounter": map memory 20971520 bytes (the service's SLA modules together) over sla.maxMapBytes 16777216`},
		{"too many instances", `[{"name": "packetcounter"}, {"name": "dropmark", "config": {"tos": 4}}, {"name": "dropmark", "config": {"tos": 8}}]`,
			"this deploy would run 3 SLA module instances, over sla.maxInstances 2"},
	}
	for _, tc := range cases {
		body := fmt.Sprintf(`{"pid": %d, "serviceName": "app.ns.tenant.ns", "instanceNumber": 0, "ebpfModules": %s}`, c.pid, tc.mods)
		status, out, err := n.d.Client.Raw(ctx(t), http.MethodPost, "/container/deploy", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		var eb struct{ Error string }
		_ = json.Unmarshal(out, &eb)
		if status != http.StatusUnprocessableEntity || !strings.Contains(eb.Error, tc.text) {
			t.Errorf("%s: %d %s, want 422 containing %q", tc.name, status, out, tc.text)
		}
		n.assertState(t, before, tc.name)
		var list []ebpfmanager.Info
		getJSON(t, n, "/ebpf", &list)
		recs, err := n.d.Client.Services(ctx(t))
		if err != nil || len(list) != 0 || len(recs) != 0 {
			t.Fatalf("%s: left instances %+v, services %+v (%v)", tc.name, list, recs, err)
		}
		if entries, _ := os.ReadDir(n.d.PinDir); len(entries) != 0 {
			t.Fatalf("%s: pins left: %v", tc.name, entries)
		}
	}
	// Within the policy, the same service deploys.
	body := apiBody(c.pid, "app.ns.tenant.ns", 0)
	body.EbpfModules = []events.Module{{Name: "packetcounter", Config: json.RawMessage(`{"maxInterfaces": 16}`)}}
	if _, err := n.d.Client.Deploy(ctx(t), deploy.KindContainer, body); err != nil {
		t.Fatal(err)
	}
	var list []ebpfmanager.Info
	getJSON(t, n, "/ebpf", &list)
	if len(list) != 1 || !list[0].SLA || list[0].Priority != ebpfmanager.SLAPriority || len(list[0].Attachments) != 2 {
		t.Fatalf("SLA instance: %+v", list)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.tenant.ns", 0)
	n.assertState(t, n.ready, "after the SLA service")
	n.stop(t)
}
