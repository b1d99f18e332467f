package integration

import (
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/deploy"
)

// A firewall rule that denies ICMP says why it drops: after denied pings,
// GET /metrics counts them under netmanager_drops_total with the reason
// "rule" (bpf/reasons.h nm_drop, named by the firewall's DropReasons), at
// least as many as were sent, and the rule's own hits agree.
func TestDropsByReason(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	a, b := newContainer(t), newContainer(t)
	deployContainer(t, n, a, "app.ns.pinger.ns", 0, "")
	rb := deployContainer(t, n, b, "app.ns.quiet.ns", 0, "")
	fw := loadModule(t, n, `{"name": "firewall", "services": ["app.ns.quiet.ns"], "config": {"stateful": false,
		"rules": [{"id": "noping", "action": "deny", "proto": "icmp"}]}}`)
	const pings = 3
	pingMarked(t, a, rb.NsAddress, pings, "", true)

	var rules []struct {
		ID   string
		Hits uint64
	}
	getJSON(t, n, "/ebpf/"+fw.ID+"/rules", &rules)
	if len(rules) != 1 || rules[0].Hits < pings {
		t.Fatalf("rules: %+v", rules)
	}
	fams := scrapeMetrics(t, n)
	got := mustSample(t, fams, "netmanager_drops_total", map[string]string{"instance": fw.ID, "module": "firewall", "reason": "rule"})
	if got < pings || got != float64(rules[0].Hits) {
		t.Fatalf("netmanager_drops_total{reason=rule} = %v, want at least %d and the rule's hits (%d)", got, pings, rules[0].Hits)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.pinger.ns", 0)
	undeploy(t, n, deploy.KindContainer, "app.ns.quiet.ns", 0)
	n.stop(t)
}
