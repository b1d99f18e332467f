package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/table"
	"github.com/oakestra/netmanager/test/metricsdoc"
)

// scrapeMetrics GETs /metrics and parses it.
func scrapeMetrics(t *testing.T, n *node) map[string]*dto.MetricFamily {
	t.Helper()
	status, body, err := n.d.Client.Raw(ctx(t), http.MethodGet, "/metrics", nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v\n%s", status, err, body)
	}
	return metricsdoc.Parse(t, "GET /metrics", body)
}

func mustSample(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	v, ok := metricsdoc.Value(fams, name, want)
	if !ok {
		t.Fatalf("GET /metrics has no %s%v", name, want)
	}
	return v
}

// consistently calls read until two calls in a row agree (the node's own
// IPv6 chatter moves counters now and then), then returns the scrape taken
// between them.
func consistently(t *testing.T, n *node, read func(map[string]*dto.MetricFamily) (got, want float64)) (float64, float64) {
	t.Helper()
	var got, want float64
	for i := 0; i < 40; i++ {
		fams := scrapeMetrics(t, n)
		got, want = read(fams)
		if got == want {
			return got, want
		}
		time.Sleep(50 * time.Millisecond)
	}
	return got, want
}

// Metrics scraped after known traffic match what the modules' own routes,
// the user-space proxy and the deploy API report; with bpfStats the
// programs' run counts match the packets they counted.
func TestMetricsMatchCounters(t *testing.T) {
	n := newNode(t, "--bpf-stats")
	a, b := newContainer(t), newContainer(t)
	ra := deployContainer(t, n, a, "app.ns.alpha.ns", 0, "")
	rb := deployContainer(t, n, b, "app.ns.beta.ns", 0, "")
	if _, err := n.d.Client.Deploy(ctx(t), deploy.KindContainer, apiBody(1<<22+1, "app.ns.gamma.ns", 0)); err == nil {
		t.Fatal("a deploy into a process that does not exist succeeded")
	}
	m := metricsSetup{n: n}
	m.vethA, _ = hostVeths(t, n, ra.ServiceName, rb.ServiceName)

	// Through the user-space proxy, before the proxy module takes over.
	svcIP := serviceIP(t, n, rb.ServiceName, 0, table.PolicyRoundRobin)
	pingMarked(t, a, svcIP, 2, "", false)

	m.pc = loadModule(t, n, `{"name": "packetcounter", "priority": 10}`).ID
	m.fw = loadModule(t, n, `{"name": "firewall", "priority": 20, "config": {"rules": [{"id": "no-udp-9", "action": "deny", "proto": "udp", "dstPorts": "9"}]}}`).ID
	m.px = loadModule(t, n, `{"name": "proxy", "priority": 30}`).ID
	if status, _, _ := n.d.Client.Raw(ctx(t), http.MethodPost, "/ebpf", []byte(`{"name": "nosuchmodule"}`)); status != http.StatusNotFound {
		t.Fatalf("loading a missing module answered %d", status)
	}
	pingMarked(t, a, rb.NsAddress, 3, "", false)
	pingMarked(t, a, svcIP, 3, "", false) // the proxy module translates it
	a.ns.MustExec(t, "bash", "-c", fmt.Sprintf("for i in 1 2 3 4; do echo x > /dev/udp/%s/9; done", rb.NsAddress))

	fams := scrapeMetrics(t, n)
	m.checkOperations(t, fams)
	m.checkPacketCounter(t, fams)
	m.checkFirewallAndProxies(t, fams)
	checkMetricsDoc(t, fams)
	n.stop(t)
}

// metricsSetup is TestMetricsMatchCounters' node: three module instances on
// two services, alpha's host veth.
type metricsSetup struct {
	n          *node
	vethA      string
	pc, fw, px string // instance ids
}

// checkOperations: services, deploys and module loads by outcome, instances.
func (m metricsSetup) checkOperations(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	failed := 0.0
	for _, s := range fams["netmanager_api_operations_total"].GetMetric() {
		if metricsdoc.Label(s, "operation") == "deploy" && metricsdoc.Label(s, "error") != "" {
			failed += s.GetCounter().GetValue()
		}
	}
	if failed != 1 {
		t.Errorf("failed deploys counted: %v, want 1", failed)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"netmanager_services", map[string]string{"kind": "container"}, 2},
		{"netmanager_api_operations_total", map[string]string{"operation": "deploy", "error": ""}, 2},
		{"netmanager_ebpf_operations_total", map[string]string{"operation": "load", "error": ""}, 3},
		{"netmanager_ebpf_operations_total", map[string]string{"operation": "load", "error": "not_found"}, 1},
		{"netmanager_ebpf_attachments", map[string]string{"instance": m.fw, "module": "firewall"}, 2},
		{"netmanager_ebpf_instance_up", map[string]string{"instance": m.px, "module": "proxy"}, 1},
		{"netmanager_ebpf_scrape_error", map[string]string{"instance": m.pc}, 0},
	} {
		if v := mustSample(t, fams, c.name, c.labels); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
}

// checkPacketCounter: each sample equals GET /counts; its ingress program's
// runs are the packets it counted leaving both services.
func (m metricsSetup) checkPacketCounter(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	got, want := consistently(t, m.n, func(f map[string]*dto.MetricFamily) (float64, float64) {
		return mustSample(t, f, "netmanager_module_packetcounter_packets_total", map[string]string{"instance": m.pc, "interface": m.vethA, "direction": "egress"}),
			float64(counts(t, m.n, m.pc, m.vethA)["egress"].Packets)
	})
	if got != want || got < 3 {
		t.Errorf("packetcounter packets on %s: metrics %v, /counts %v", m.vethA, got, want)
	}
	got, want = consistently(t, m.n, func(f map[string]*dto.MetricFamily) (float64, float64) {
		var counted float64
		for _, s := range f["netmanager_module_packetcounter_packets_total"].GetMetric() {
			if metricsdoc.Label(s, "direction") == "egress" && metricsdoc.Label(s, "instance") == m.pc {
				counted += s.GetCounter().GetValue()
			}
		}
		return mustSample(t, f, "netmanager_ebpf_program_runs_total", map[string]string{"instance": m.pc, "hook": "ingress"}), counted
	})
	if got != want || got == 0 {
		t.Errorf("packetcounter ingress program: %v runs, %v packets counted", got, want)
	}
	if v := mustSample(t, fams, "netmanager_ebpf_program_run_seconds_total", map[string]string{"instance": m.pc, "hook": "ingress"}); v <= 0 {
		t.Errorf("packetcounter run time %v", v)
	}
}

// checkFirewallAndProxies: denied UDP and the rule's hits equal the
// firewall's routes; the proxy module's and the user-space proxy's figures
// equal theirs.
func (m metricsSetup) checkFirewallAndProxies(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	var stats map[string]map[string]struct{ Allowed, Denied uint64 }
	getJSON(t, m.n, "/ebpf/"+m.fw+"/stats", &stats)
	denied := mustSample(t, fams, "netmanager_module_firewall_packets_total", map[string]string{"interface": m.vethA, "direction": "egress", "verdict": "denied"})
	if denied != 4 || uint64(denied) != stats[m.vethA]["egress"].Denied {
		t.Errorf("firewall denied on %s: metrics %v, /stats %d, want 4", m.vethA, denied, stats[m.vethA]["egress"].Denied)
	}
	if v := mustSample(t, fams, "netmanager_module_firewall_rule_hits_total", map[string]string{"rule": "no-udp-9"}); v != 4 {
		t.Errorf("rule no-udp-9 hits %v, want 4", v)
	}
	var pstats map[string]uint64
	getJSON(t, m.n, "/ebpf/"+m.px+"/stats", &pstats)
	if v := mustSample(t, fams, "netmanager_module_proxy_packets_total", map[string]string{"event": "hits"}); v == 0 || uint64(v) != pstats["hits"] {
		t.Errorf("proxy module hits: metrics %v, /stats %d", v, pstats["hits"])
	}
	var up struct{ Stats struct{ Translated uint64 } }
	getJSON(t, m.n, "/proxy", &up)
	if v := mustSample(t, fams, "netmanager_proxy_translated_packets_total", nil); v == 0 || uint64(v) != up.Stats.Translated {
		t.Errorf("user-space proxy translated: metrics %v, /proxy %d", v, up.Stats.Translated)
	}
}

// checkMetricsDoc holds docs/metrics.md to a scrape: every family of its
// example is in the scrape alike, its table names every netmanager_* family
// alike, and every row is in the scrape but those of parts this setup does
// not run (the sdwan module's rows, which its tests check; cluster RTTs; foreign programs,
// which cmd/netmanager's TestMetricsDropsAndForeign holds to the table).
func checkMetricsDoc(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	rows := metricsdoc.Rows(t)
	for name, f := range metricsdoc.Example(t) {
		if got, ok := fams[name]; !ok || !metricsdoc.Of(got).Equal(metricsdoc.Of(f)) {
			t.Errorf("docs/metrics.md example: %s %+v is not in the scrape alike", name, metricsdoc.Of(f))
		}
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "netmanager_") {
			continue
		}
		if r, ok := rows[name]; !ok || !r.Equal(metricsdoc.Of(f)) {
			t.Errorf("docs/metrics.md lists %s as %+v; the scrape has %+v", name, r, metricsdoc.Of(f))
		}
	}
	for name := range rows {
		if _, ok := fams[name]; !ok && !strings.HasPrefix(name, "netmanager_module_sdwan_") && name != "netmanager_proxy_peer_rtt_seconds" && !strings.HasPrefix(name, "netmanager_ebpf_foreign_") {
			t.Errorf("docs/metrics.md lists %s, which the scrape lacks", name)
		}
	}
}

// Without bpfStats no run statistics are exported (the kernel keeps none).
func TestMetricsWithoutBPFStats(t *testing.T) {
	n := newNode(t)
	loadModule(t, n, `{"name": "packetcounter"}`)
	fams := scrapeMetrics(t, n)
	if _, ok := fams["netmanager_ebpf_program_runs_total"]; ok {
		t.Error("run counts exported without bpfStats")
	}
	if _, ok := fams["netmanager_ebpf_instance_up"]; !ok {
		t.Error("no netmanager_ebpf_instance_up")
	}
	n.stop(t)
}

// hostVeths returns the host veths of two deployed services.
func hostVeths(t *testing.T, n *node, a, b string) (string, string) {
	t.Helper()
	recs, err := n.d.Client.Services(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var va, vb string
	for _, r := range recs {
		switch r.ServiceName {
		case a:
			va = r.HostVeth
		case b:
			vb = r.HostVeth
		}
	}
	if va == "" || vb == "" {
		t.Fatalf("no veths for %s, %s in %+v", a, b, recs)
	}
	return va, vb
}
