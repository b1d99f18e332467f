package main

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/proxy"
	"github.com/oakestra/netmanager/test/metricsdoc"
)

// awkwardSources has what the text format must escape or spell specially:
// quotes, backslashes and line feeds in label values and help, NaN, ±Inf,
// -1, tiny and huge values, labels given in another order, samples refused
// for a clash or a name that is not a legacy Prometheus name.
func awkwardSources() metricsSources {
	api := &countingDeployer{Deployer: fakeDeployer{}}
	_, _ = api.Deploy(context.Background(), deploy.Request{})
	weird := map[string]string{"interface": "a\"b\\c\nd", "direction": "ingress"}
	return metricsSources{
		version: "v\"1\\\n", api: api,
		services: func() []deploy.Record { return []deploy.Record{{Kind: deploy.KindUnikernel}} },
		proxy: func() proxy.Stats {
			return proxy.Stats{Translated: 1 << 62, Dropped: map[string]uint64{"a b": 1, "z\"": 2}, PeerRTTms: map[string]float64{"[fd00::1]:1": 0.0001}}
		},
		ebpf: func() ebpfmanager.Metrics {
			return ebpfmanager.Metrics{
				Operations: []ebpfmanager.OperationCount{{Operation: "load", Count: 3}},
				Instances: []ebpfmanager.InstanceMetrics{
					{ID: "1", Module: "Odd-Mod", State: ebpfmanager.StateRunning, Attachments: 2,
						Drops: []ebpfmanager.DropCount{{Reason: "rule \"x\"", Count: 7}, {Reason: "reason 9", Count: 0}},
						Samples: []module.Metric{
							{Name: "v_total", Help: "Help with \\ and \n and \"quotes\".", Labels: weird, Value: math.Inf(1)},
							{Name: "v_total", Labels: map[string]string{"direction": "egress", "interface": "x"}, Value: -1},
							{Name: "g", Gauge: true, Value: math.NaN()},
							{Name: "h", Gauge: true, Labels: map[string]string{"b": "1", "a": "2"}, Value: math.Inf(-1)},
							{Name: "t", Gauge: true, Value: 1e-300},
							{Name: "u", Gauge: true, Value: 123456789.125},
						}},
					{ID: "2", Module: "odd_mod", State: ebpfmanager.StateRunning,
						Samples: []module.Metric{{Name: "v_total", Value: 1}, {Name: "bad-name", Gauge: true, Value: 1}}},
				},
				Foreign: []ebpfmanager.ForeignProgram{
					{Interface: "oak1", Hook: module.HookIngress, ID: 42, Name: "cil_from", EndsChain: true},
					{Interface: "oak1", Hook: module.HookIngress, ID: 43, Name: "other", Position: 5},
					{Interface: "eth0", Hook: module.HookEgress, ID: 7, Name: "x"},
				},
			}
		},
	}
}

// The text path writes, byte for byte, what the library's encoder writes
// from the families the protobuf path builds, and it parses.
func TestTextEmitterMatchesLibrary(t *testing.T) {
	for _, src := range []metricsSources{awkwardSources(), benchSources(), {version: "v", api: &countingDeployer{}, services: func() []deploy.Record { return nil }}} {
		te := newTextEmitter()
		collect(te, src)
		got := te.appendTo(nil)
		e := newEmitter()
		collect(e, src)
		var want bytes.Buffer
		for _, f := range e.families() {
			if _, err := expfmt.MetricFamilyToText(&want, f); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("the text emitter wrote\n%s\nthe library\n%s", got, want.Bytes())
		}
		metricsdoc.Parse(t, "the text emitter's exposition", got)
	}
}

// A scrape in the default (text) format and one in protobuf carry the same
// families; the text one has its length and the negotiated content type.
func TestMetricsTextAndProtobufAgree(t *testing.T) {
	h := metricsHandler(awkwardSources())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	if cl := rec.Header().Get("Content-Length"); cl == "" || cl != strconv.Itoa(rec.Body.Len()) {
		t.Errorf("Content-Length %q for %d bytes", cl, rec.Body.Len())
	}
	text := metricsdoc.Parse(t, "the text scrape", rec.Body.Bytes())

	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); !strings.Contains(ct, "application/vnd.google.protobuf") {
		t.Fatalf("protobuf scrape answered %q", ct)
	}
	pb := map[string]*dto.MetricFamily{}
	for r := rec.Body; r.Len() > 0; {
		f := &dto.MetricFamily{}
		if err := protodelim.UnmarshalFrom(r, f); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		pb[f.GetName()] = f
	}
	for name, f := range text {
		if !strings.HasPrefix(name, "netmanager_") {
			continue
		}
		if !proto.Equal(normalize(f), normalize(pb[name])) {
			t.Errorf("%s: text %v, protobuf %v", name, f, pb[name])
		}
	}
	for name := range pb {
		if _, ok := text[name]; !ok {
			t.Errorf("protobuf has %s, text does not", name)
		}
	}
}

// normalize makes two decodings of one family comparable: an empty help is
// none in the text format, and NaN is no value proto.Equal finds equal.
func normalize(f *dto.MetricFamily) *dto.MetricFamily {
	if f == nil {
		return nil
	}
	f = proto.Clone(f).(*dto.MetricFamily)
	if f.GetHelp() == "" {
		f.Help = nil
	}
	for _, m := range f.Metric {
		if m.Gauge != nil && math.IsNaN(m.Gauge.GetValue()) {
			m.Gauge.Value = proto.Float64(-0.5)
		}
	}
	return f
}

// The drop counts and the foreign programs: one series per reason, one per
// hook with any foreign program, one per program ending the chain.
func TestMetricsDropsAndForeign(t *testing.T) {
	body, fams := scrape(t, awkwardSources())
	for _, want := range []string{
		`netmanager_drops_total{instance="1",module="Odd-Mod",reason="rule \"x\""} 7`,
		`netmanager_drops_total{instance="1",module="Odd-Mod",reason="reason 9"} 0`,
		`netmanager_ebpf_foreign_programs{hook="egress",interface="eth0"} 1`,
		`netmanager_ebpf_foreign_programs{hook="ingress",interface="oak1"} 2`,
		`netmanager_ebpf_foreign_ends_chain{hook="ingress",id="42",interface="oak1",name="cil_from"} 1`,
		`# TYPE netmanager_drops_total counter`,
		`# TYPE netmanager_ebpf_foreign_programs gauge`,
		`# TYPE netmanager_ebpf_foreign_ends_chain gauge`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if n := len(fams["netmanager_ebpf_foreign_ends_chain"].GetMetric()); n != 1 {
		t.Errorf("%d programs end the chain, want 1:\n%s", n, body)
	}
	// docs/metrics.md lists them as the scrape has them.
	rows := metricsdoc.Rows(t)
	for _, name := range []string{"netmanager_drops_total", "netmanager_ebpf_foreign_programs", "netmanager_ebpf_foreign_ends_chain"} {
		if r, ok := rows[name]; !ok || !r.Equal(metricsdoc.Of(fams[name])) {
			t.Errorf("docs/metrics.md lists %s as %+v; the scrape has %+v", name, r, metricsdoc.Of(fams[name]))
		}
	}
	// The instance with a refused sample says so; the first is whole.
	for _, want := range []string{`netmanager_ebpf_scrape_error{instance="2",module="odd_mod"} 1`, `netmanager_ebpf_scrape_error{instance="1",module="Odd-Mod"} 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

// Every series of an instance, an interface or a foreign program is gone
// from the next scrape once its subject is: nothing is kept between scrapes.
func TestMetricsNoStaleSeries(t *testing.T) {
	src := awkwardSources()
	full := src.ebpf()
	now := full
	src.ebpf = func() ebpfmanager.Metrics { return now }
	h := metricsHandler(src)
	get := func() string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	if b := get(); !strings.Contains(b, `instance="2"`) || !strings.Contains(b, `interface="oak1"`) {
		t.Fatalf("the first scrape lacks instance 2 or oak1:\n%s", b)
	}
	now = ebpfmanager.Metrics{Operations: full.Operations, Instances: full.Instances[:1], Foreign: full.Foreign[2:]}
	b := get()
	for _, gone := range []string{`instance="2"`, `interface="oak1"`, `netmanager_ebpf_foreign_ends_chain`, `module="odd_mod"`} {
		if strings.Contains(b, gone) {
			t.Errorf("after its subject went, the scrape still has %s:\n%s", gone, b)
		}
	}
}

// What Prometheus 3 asks for by default (OpenMetrics first, which the
// daemon does not offer) gets the text format, from textEmitter.
func TestMetricsPrometheusAcceptGetsText(t *testing.T) {
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2")
	rec := httptest.NewRecorder()
	metricsHandler(benchSources()).ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") || rec.Header().Get("Content-Length") == "" {
		t.Fatalf("Content-Type %q, Content-Length %q", ct, rec.Header().Get("Content-Length"))
	}
	metricsdoc.Parse(t, "the scrape", rec.Body.Bytes())
}
