package main

import (
	"fmt"
	"net/http/httptest"
	"testing"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
)

// BenchmarkCollect is the exposition's own cost: 10 instances of 200
// samples each (a packet counter's on 50 veths), without reading a map.
func BenchmarkCollect(b *testing.B) {
	var insts []ebpfmanager.InstanceMetrics
	for i := 0; i < 10; i++ {
		var ms []module.Metric
		for v := 0; v < 50; v++ {
			for _, dir := range []string{"ingress", "egress"} {
				l := map[string]string{"interface": fmt.Sprintf("oak%08x", v), "direction": dir}
				ms = append(ms, module.Metric{Name: "packets_total", Help: "Packets.", Labels: l, Value: 1}, module.Metric{Name: "bytes_total", Help: "Bytes.", Labels: l, Value: 2})
			}
		}
		insts = append(insts, ebpfmanager.InstanceMetrics{ID: fmt.Sprint(i), Module: "packetcounter", State: ebpfmanager.StateRunning, Samples: ms})
	}
	h := metricsHandler(metricsSources{version: "v", api: &countingDeployer{}, services: func() []deploy.Record { return nil },
		ebpf: func() ebpfmanager.Metrics { return ebpfmanager.Metrics{Instances: insts} }})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	}
}
