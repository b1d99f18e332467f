package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
	"github.com/oakestra/netmanager/test/metricsdoc"
)

// The gateway's samples are its routes' figures, pass the SDK's checks, and
// are the sdwan rows of docs/metrics.md, no more, no fewer.
func TestMetrics(t *testing.T) {
	w := newGW(t, `[{"id": 1, "dst": "10.2.0.0/16", "action": "redirect", "target": "wan1"}]`, `[]`, "")
	w.setUp(t, 0, true)
	if v, _ := w.run(t, "lan0", lanTCP(t, "10.2.0.7", 40000, 5001, 0, 100)); v != redirect {
		t.Fatalf("verdict %s, want REDIRECT", bpftest.Verdict(v))
	}
	ms, err := w.g.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if err := module.CheckMetrics(ms); err != nil {
		t.Fatal(err)
	}
	wans, err := w.g.wanInfos()
	if err != nil {
		t.Fatal(err)
	}
	value := func(name, wan string) (float64, bool) {
		for _, m := range ms {
			if m.Name == name && m.Labels["wan"] == wan {
				return m.Value, true
			}
		}
		return 0, false
	}
	for _, wi := range wans {
		up, _ := value("wan_up", wi.Name)
		tx, ok := value("wan_tx_packets_total", wi.Name)
		if !ok || (up == 1) != wi.Up || tx != float64(wi.TxPackets) || (wi.Name == "wan1" && tx != 1) {
			t.Errorf("WAN %s: up %v tx %v, /wans says %+v", wi.Name, up, tx, wi)
		}
	}
	const prefix = "netmanager_module_sdwan_"
	seen := map[string]metricsdoc.Row{}
	for _, m := range ms {
		r := metricsdoc.Row{Type: "counter", Labels: []string{"instance", "module"}}
		if m.Gauge {
			r.Type = "gauge"
		}
		for k := range m.Labels {
			r.Labels = append(r.Labels, k)
		}
		slices.Sort(r.Labels)
		seen[prefix+m.Name] = r
	}
	rows := metricsdoc.Rows(t)
	for name, r := range seen {
		if d, ok := rows[name]; !ok || !d.Equal(r) {
			t.Errorf("docs/metrics.md lists %s as %+v; the module exports %+v", name, d, r)
		}
	}
	for name := range rows {
		if _, ok := seen[name]; !ok && strings.HasPrefix(name, prefix) {
			t.Errorf("docs/metrics.md lists %s, which the module does not export", name)
		}
	}
}
