package grafana

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/oakestra/netmanager/test/metricsdoc"
)

func TestMetricNames(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
		bad  bool
	}{
		{`netmanager_services{instance="$node"}`, []string{"netmanager_services"}, false},
		{`sum by (kind, instance) (rate(a_total{x="}{[("}[$__rate_interval]))`, []string{"a_total"}, false},
		{`sum without(le)(rate(a[5m])) / on(instance) group_left(version) b * 8`, []string{"a", "b"}, false},
		{`count(x == 0) or vector(0) unless y offset 1h`, []string{"x", "y"}, false},
		{`histogram_quantile(0.9, rate(h_bucket[1m:30s]))`, []string{"h_bucket"}, false},
		{`rate(x[${interval}]) > bool 1e3`, []string{"x"}, false},
		{`topk(5, x) and label_replace(y, "a", "$1", "b", "(.*)")`, []string{"x", "y"}, false},
		{`{__name__="x"}`, nil, true},
		{`rate(x[5m]`, nil, true},
		{`x{a="b}`, nil, true},
		{`x)`, nil, true},
		{`x{a=(b)}`, nil, true},
	} {
		got, err := metricNames(c.expr)
		if c.bad != (err != nil) || !slices.Equal(got, c.want) {
			t.Errorf("metricNames(%q) = %q, %v; want %q (refused: %v)", c.expr, got, err, c.want, c.bad)
		}
	}
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title         string
	SchemaVersion int
	UID           string
	Templating    struct{ List []variable }
	Panels        []panel
}

type variable struct {
	Name, Type string
	Query      json.RawMessage
	Datasource *datasource
}

type datasource struct{ Type, UID string }

type panel struct {
	ID         int
	Type       string
	Title      string
	Datasource *datasource
	GridPos    *struct{ H, W, X, Y int }
	Targets    []struct{ Expr string }
	Panels     []panel // a collapsed row's
}

func load(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile("netmanager-node.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("netmanager-node.json: %v", err)
	}
	return d
}

// The dashboard is one for Grafana 10 or later, chooses its Prometheus and
// its node, and every panel reads that Prometheus.
func TestDashboardShape(t *testing.T) {
	d := load(t)
	if d.SchemaVersion < 38 || d.UID == "" || d.Title == "" {
		t.Errorf("schemaVersion %d (Grafana 10 writes 38 and later), uid %q, title %q", d.SchemaVersion, d.UID, d.Title)
	}
	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v := vars["datasource"]; v.Type != "datasource" || string(v.Query) != `"prometheus"` {
		t.Errorf("no Prometheus datasource variable: %+v", v)
	}
	if v := vars["node"]; v.Type != "query" || !strings.Contains(string(v.Query), "label_values(netmanager_build_info, instance)") || v.Datasource == nil || v.Datasource.UID != "${datasource}" {
		t.Errorf("no node variable over the targets' instance label: %+v", v)
	}
	ids := map[int]bool{}
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] || p.GridPos == nil {
			t.Errorf("panel %q: id %d twice, or no gridPos", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q reads %+v with %d queries", p.Title, p.Datasource, len(p.Targets))
		}
		for _, q := range p.Targets {
			if !strings.Contains(q.Expr, `instance="$node"`) {
				t.Errorf("panel %q: %q is not limited to the node", p.Title, q.Expr)
			}
		}
	}
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// Every query names metrics the daemon exports: those docs/metrics.md
// lists, which TestMetricsMatchCounters holds to a real scrape. And the
// dashboard shows what a node's operator looks for first.
func TestDashboardMetricsExist(t *testing.T) {
	d := load(t)
	rows := metricsdoc.Rows(t)
	used := map[string]bool{}
	check := func(where, expr string) {
		names, err := metricNames(expr)
		if err != nil || len(names) == 0 {
			t.Errorf("%s: %q: %v (%d metrics)", where, expr, err, len(names))
		}
		for _, n := range names {
			used[n] = true
			if _, ok := rows[n]; !ok {
				t.Errorf("%s: %q names %s, which docs/metrics.md does not list", where, expr, n)
			}
		}
	}
	for _, v := range d.Templating.List {
		var q struct{ Query string }
		if v.Type == "query" && json.Unmarshal(v.Query, &q) == nil {
			// Grafana's label_values(selector, label): the selector.
			expr, ok := strings.CutPrefix(q.Query, "label_values(")
			if i := strings.LastIndexByte(expr, ','); ok && i > 0 {
				expr = expr[:i]
			}
			check("variable "+v.Name, expr)
		}
	}
	for _, p := range allPanels(d.Panels) {
		for _, q := range p.Targets {
			check("panel "+p.Title, q.Expr)
		}
	}
	for _, want := range []string{
		"netmanager_services", "netmanager_ebpf_attachments", "netmanager_module_firewall_packets_total",
		"netmanager_module_packetcounter_packets_total", "netmanager_drops_total", "netmanager_ebpf_program_run_seconds_total",
		"netmanager_proxy_translated_packets_total", "netmanager_proxy_tunnel_out_packets_total", "netmanager_module_sdwan_wan_up",
		"netmanager_module_sdwan_wan_latency_seconds", "netmanager_module_sdwan_wan_loss_ratio", "netmanager_ebpf_operations_total",
		"netmanager_ebpf_scrape_error", "netmanager_ebpf_foreign_programs", "netmanager_ebpf_foreign_ends_chain",
	} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}
