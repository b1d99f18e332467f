package main

import (
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
)

// benchSources are 10 instances of 200 samples each (a packet counter's on
// 50 veths), without reading a map.
func benchSources() metricsSources {
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
	return metricsSources{version: "v", api: &countingDeployer{}, services: func() []deploy.Record { return nil },
		ebpf: func() ebpfmanager.Metrics { return ebpfmanager.Metrics{Instances: insts} }}
}

// BenchmarkCollect is the exposition's own cost, GET /metrics in the text
// format (textEmitter) with benchSources.
func BenchmarkCollect(b *testing.B) {
	h := metricsHandler(benchSources())
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	}
}

// BenchmarkCollectLibrary is the handler as it was before textEmitter, beside
// BenchmarkCollect: the same samples built as metric families and encoded,
// with the runtime's, by the library's text encoder (what a protobuf scrape
// still does, in its format).
func BenchmarkCollectLibrary(b *testing.B) {
	src := benchSources()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		runtime, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		e := newEmitter()
		collect(e, src)
		enc := expfmt.NewEncoder(rec, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, f := range append(e.families(), runtime...) {
			if err := enc.Encode(f); err != nil {
				b.Fatal(err)
			}
		}
	}
}
