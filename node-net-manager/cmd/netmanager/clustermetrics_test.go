package main

import (
	"strings"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/test/metricsdoc"
)

type fakeClusterCounts struct{}

func (fakeClusterCounts) Rejected() map[string]uint64 {
	return map[string]uint64{"service_ip": 3, "job": 0}
}
func (fakeClusterCounts) LeftOut() uint64 { return 2 }

// The cluster table's refusals are exported, every reason (0 included), and
// as docs/metrics.md lists them.
func TestMetricsCluster(t *testing.T) {
	body, fams := scrape(t, metricsSources{version: "v", api: &countingDeployer{}, services: func() []deploy.Record { return nil }, cluster: fakeClusterCounts{}})
	for _, want := range []string{
		`netmanager_cluster_answers_rejected_total{reason="service_ip"} 3`,
		`netmanager_cluster_answers_rejected_total{reason="job"} 0`,
		`netmanager_cluster_instances_left_out_total 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q:\n%s", want, body)
		}
	}
	rows := metricsdoc.Rows(t)
	for _, name := range []string{"netmanager_cluster_answers_rejected_total", "netmanager_cluster_instances_left_out_total"} {
		if r, ok := rows[name]; !ok || !r.Equal(metricsdoc.Of(fams[name])) {
			t.Errorf("docs/metrics.md lists %s as %+v; the scrape has %+v", name, r, metricsdoc.Of(fams[name]))
		}
	}
}
