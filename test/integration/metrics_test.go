package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

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
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("GET /metrics does not parse: %v\n%s", err, body)
	}
	return fams
}

// sample is the value of the one sample of name whose labels include want;
// ok is false when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

func mustSample(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	v, ok := sample(fams, name, want)
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
	vethA, _ := hostVeths(t, n, ra.ServiceName, rb.ServiceName)

	// Through the user-space proxy, before the proxy module takes over.
	svcIP := serviceIP(t, n, rb.ServiceName, 0, table.PolicyRoundRobin)
	pingMarked(t, a, svcIP, 2, "", false)

	pc := loadModule(t, n, `{"name": "packetcounter", "priority": 10}`)
	fw := loadModule(t, n, `{"name": "firewall", "priority": 20, "config": {"rules": [{"id": "no-udp-9", "action": "deny", "proto": "udp", "dstPorts": "9"}]}}`)
	px := loadModule(t, n, `{"name": "proxy", "priority": 30}`)
	if status, _, _ := n.d.Client.Raw(ctx(t), http.MethodPost, "/ebpf", []byte(`{"name": "nosuchmodule"}`)); status != http.StatusNotFound {
		t.Fatalf("loading a missing module answered %d", status)
	}
	pingMarked(t, a, rb.NsAddress, 3, "", false)
	pingMarked(t, a, svcIP, 3, "", false) // the proxy module translates it
	a.ns.MustExec(t, "bash", "-c", fmt.Sprintf("for i in 1 2 3 4; do echo x > /dev/udp/%s/9; done", rb.NsAddress))

	fams := scrapeMetrics(t, n)
	if v := mustSample(t, fams, "netmanager_services", map[string]string{"kind": "container"}); v != 2 {
		t.Errorf("netmanager_services = %v, want 2", v)
	}
	failed := 0.0
	for _, m := range fams["netmanager_api_operations_total"].Metric {
		if labelOf(m, "operation") == "deploy" && labelOf(m, "error") != "" {
			failed += m.Counter.GetValue()
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
		{"netmanager_api_operations_total", map[string]string{"operation": "deploy", "error": ""}, 2},
		{"netmanager_ebpf_operations_total", map[string]string{"operation": "load", "error": ""}, 3},
		{"netmanager_ebpf_operations_total", map[string]string{"operation": "load", "error": "not_found"}, 1},
		{"netmanager_ebpf_attachments", map[string]string{"instance": fw.ID, "module": "firewall"}, 2},
		{"netmanager_ebpf_instance_up", map[string]string{"instance": px.ID, "module": "proxy"}, 1},
		{"netmanager_ebpf_scrape_error", map[string]string{"instance": pc.ID}, 0},
	} {
		if v := mustSample(t, fams, c.name, c.labels); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}

	// Packet counter: each sample equals GET /counts; its ingress program's
	// runs are the packets it counted leaving both services.
	got, want := consistently(t, n, func(f map[string]*dto.MetricFamily) (float64, float64) {
		return mustSample(t, f, "netmanager_module_packetcounter_packets_total", map[string]string{"instance": pc.ID, "interface": vethA, "direction": "egress"}),
			float64(counts(t, n, pc.ID, vethA)["egress"].Packets)
	})
	if got != want || got < 3 {
		t.Errorf("packetcounter packets on %s: metrics %v, /counts %v", vethA, got, want)
	}
	got, want = consistently(t, n, func(f map[string]*dto.MetricFamily) (float64, float64) {
		var counted float64
		for _, m := range f["netmanager_module_packetcounter_packets_total"].Metric {
			if labelOf(m, "direction") == "egress" && labelOf(m, "instance") == pc.ID {
				counted += m.Counter.GetValue()
			}
		}
		return mustSample(t, f, "netmanager_ebpf_program_runs_total", map[string]string{"instance": pc.ID, "hook": "ingress"}), counted
	})
	if got != want || got == 0 {
		t.Errorf("packetcounter ingress program: %v runs, %v packets counted", got, want)
	}
	if v := mustSample(t, fams, "netmanager_ebpf_program_run_seconds_total", map[string]string{"instance": pc.ID, "hook": "ingress"}); v <= 0 {
		t.Errorf("packetcounter run time %v", v)
	}

	// Firewall: denied UDP and the rule's hits equal its routes.
	var stats map[string]map[string]struct{ Allowed, Denied uint64 }
	getJSON(t, n, "/ebpf/"+fw.ID+"/stats", &stats)
	denied := mustSample(t, fams, "netmanager_module_firewall_packets_total", map[string]string{"interface": vethA, "direction": "egress", "verdict": "denied"})
	if denied != 4 || uint64(denied) != stats[vethA]["egress"].Denied {
		t.Errorf("firewall denied on %s: metrics %v, /stats %d, want 4", vethA, denied, stats[vethA]["egress"].Denied)
	}
	if v := mustSample(t, fams, "netmanager_module_firewall_rule_hits_total", map[string]string{"rule": "no-udp-9"}); v != 4 {
		t.Errorf("rule no-udp-9 hits %v, want 4", v)
	}

	// Proxy module and user-space proxy: the same figures as their routes.
	var pstats map[string]uint64
	getJSON(t, n, "/ebpf/"+px.ID+"/stats", &pstats)
	if v := mustSample(t, fams, "netmanager_module_proxy_packets_total", map[string]string{"event": "hits"}); v == 0 || uint64(v) != pstats["hits"] {
		t.Errorf("proxy module hits: metrics %v, /stats %d", v, pstats["hits"])
	}
	var up struct{ Stats struct{ Translated uint64 } }
	getJSON(t, n, "/proxy", &up)
	if v := mustSample(t, fams, "netmanager_proxy_translated_packets_total", nil); v == 0 || uint64(v) != up.Stats.Translated {
		t.Errorf("user-space proxy translated: metrics %v, /proxy %d", v, up.Stats.Translated)
	}
	checkMetricsDoc(t, fams)
	n.stop(t)
}

// checkMetricsDoc holds docs/metrics.md to a scrape: every family of its
// example is in the scrape alike, its table names every netmanager_* family
// alike, and every row is in the scrape but those of parts this setup does
// not run (the sdwan module's rows, which its tests check; cluster RTTs).
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
		if _, ok := fams[name]; !ok && !strings.HasPrefix(name, "netmanager_module_sdwan_") && name != "netmanager_proxy_peer_rtt_seconds" {
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

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
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
