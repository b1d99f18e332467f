package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/sirupsen/logrus"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/httpjson"
	"github.com/oakestra/netmanager/node-net-manager/proxy"
)

// metricsSources are what GET /metrics reads on every scrape; a nil func is
// a part that is off on this node.
type metricsSources struct {
	log      logrus.FieldLogger
	version  string
	services func() []deploy.Record
	api      *countingDeployer
	ebpf     func() ebpfmanager.Metrics
	proxy    func() proxy.Stats
	audit    *api.Audit // the API's writes and refusals (nil: none)
	// cluster is what the cluster table refused (nil: none; clustermetrics.go)
	cluster clusterCounts
}

// metricsHandler serves the Prometheus exposition format the scraper asks
// for (text by default): the daemon's own samples, built as metric families
// at scrape time, then the Go runtime's and the process's from a registry.
func metricsHandler(src metricsSources) http.Handler {
	if src.log == nil {
		src.log = logrus.StandardLogger()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runtime, err := reg.Gather()
		if err != nil {
			httpjson.WriteError(w, fmt.Errorf("gather runtime metrics: %w", err))
			return
		}
		format := expfmt.Negotiate(r.Header)
		w.Header().Set("Content-Type", string(format))
		enc := expfmt.NewEncoder(w, format)
		for _, f := range append(collect(src), runtime...) {
			if err := enc.Encode(f); err != nil {
				src.log.WithError(err).Debug("metrics: the scrape ended early")
				return
			}
		}
		if c, ok := enc.(expfmt.Closer); ok {
			_ = c.Close()
		}
	})
}

// collect turns the sources into metric families, sorted by name.
func collect(src metricsSources) []*dto.MetricFamily {
	e := newEmitter()
	e.gauge("netmanager_build_info", "The NetManager's version (the value is 1).", 1, "version", src.version)
	byKind := map[string]int{string(deploy.KindContainer): 0, string(deploy.KindUnikernel): 0}
	for _, r := range src.services() {
		byKind[string(r.Kind)]++
	}
	for _, k := range slices.Sorted(maps.Keys(byKind)) {
		e.gauge("netmanager_services", "Service instances deployed on this node.", float64(byKind[k]), "kind", k)
	}
	for _, o := range src.api.counts() {
		e.counter("netmanager_api_operations_total", "Deploys and undeploys answered, by outcome (error: \"\" or the class of the failure).",
			float64(o.Count), "operation", o.Operation, "error", o.Error)
	}
	collectAudit(e, src.audit) // audit.go
	collectCluster(e, src.cluster)
	if src.proxy != nil {
		collectProxy(e, src.proxy())
	}
	if src.ebpf != nil {
		collectEBPF(e, src.ebpf())
	}
	return e.families()
}

func collectProxy(e *emitter, s proxy.Stats) {
	for _, c := range []struct {
		name, help string
		v          uint64
	}{
		{"translated_packets_total", "Packets the user-space proxy translated.", s.Translated},
		{"new_sessions_total", "Sessions the user-space proxy opened.", s.NewSessions},
		{"replaced_sessions_total", "Sessions displaced by a reused source port.", s.Replaced},
		{"tunnel_out_packets_total", "Packets sent to other nodes through the tunnel.", s.TunnelOut},
		{"tunnel_in_packets_total", "Packets from other nodes delivered here.", s.TunnelIn},
		{"held_packets_total", "Packets that waited for the cluster's answer.", s.Held},
	} {
		e.counter("netmanager_proxy_"+c.name, c.help, float64(c.v))
	}
	e.gauge("netmanager_proxy_sessions", "Open sessions of the user-space proxy.", float64(s.Sessions))
	for _, r := range slices.Sorted(maps.Keys(s.Dropped)) {
		e.counter("netmanager_proxy_dropped_packets_total", "Packets the user-space proxy dropped, by reason.", float64(s.Dropped[r]), "reason", r)
	}
	for _, p := range slices.Sorted(maps.Keys(s.PeerRTTms)) {
		e.gauge("netmanager_proxy_peer_rtt_seconds", "Measured tunnel RTT to each node closest service IPs choose among.", s.PeerRTTms[p]/1000, "peer", p)
	}
}

func collectEBPF(e *emitter, m ebpfmanager.Metrics) {
	for _, o := range m.Operations {
		e.counter("netmanager_ebpf_operations_total", "eBPF Manager operations, by outcome (error: \"\" or the class of the failure).",
			float64(o.Count), "operation", o.Operation, "error", o.Error)
	}
	for _, in := range m.Instances {
		id := []string{"instance", in.ID, "module", in.Module}
		e.gauge("netmanager_ebpf_instance_up", "1 while the module instance runs, 0 when its control plane failed.", boolValue(in.State == ebpfmanager.StateRunning), id...)
		e.gauge("netmanager_ebpf_attachments", "Interfaces the instance's programs are attached to.", float64(in.Attachments), id...)
		for _, p := range in.Programs {
			l := append(id[:4:4], "hook", p.Hook.String())
			e.counter("netmanager_ebpf_program_runs_total", "Runs of the instance's program on a TC hook, over all its attachments (bpfStats).", float64(p.Runs), l...)
			e.counter("netmanager_ebpf_program_run_seconds_total", "Time the instance's program ran on a TC hook, over all its attachments (bpfStats).", p.RunTime.Seconds(), l...)
		}
		refused := collectSamples(e, id, in.Module, in.Samples)
		e.gauge("netmanager_ebpf_scrape_error", "1 when some of the instance's samples could not be read in this scrape.", boolValue(in.Error != nil || refused), id...)
	}
}

// collectSamples exports a module's samples as
// netmanager_module_<module>_<name>, with the instance's labels first, then
// the module's own in name order.
func collectSamples(e *emitter, id []string, modName string, ms []module.Metric) (refused bool) {
	prefix := "netmanager_module_" + metricWord(modName) + "_"
	var keys []string
	for _, s := range ms {
		keys = keys[:0]
		for k := range s.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		l := make([]string, 0, len(id)+2*len(keys))
		l = append(l, id...)
		for _, k := range keys {
			l = append(l, k, s.Labels[k])
		}
		ok := false
		if s.Gauge {
			ok = e.gauge(prefix+s.Name, s.Help, s.Value, l...)
		} else {
			ok = e.counter(prefix+s.Name, s.Help, s.Value, l...)
		}
		refused = refused || !ok
	}
	return refused
}

// emitter builds metric families; labels are name, value pairs, and the
// samples of one name carry the same label names (CheckMetrics sees to it
// for modules).
type emitter struct {
	fams  map[string]*dto.MetricFamily
	names map[string]*string // label names, shared by every sample
}

func newEmitter() *emitter {
	return &emitter{fams: map[string]*dto.MetricFamily{}, names: map[string]*string{}}
}

// counter and gauge add a sample; false says it was refused, for its family
// has the other type or other label names (the encoder would fail on it).
func (e *emitter) counter(name, help string, v float64, labels ...string) bool {
	m := e.metric(name, help, dto.MetricType_COUNTER, labels)
	if m != nil {
		m.Counter = &dto.Counter{Value: &v}
	}
	return m != nil
}

func (e *emitter) gauge(name, help string, v float64, labels ...string) bool {
	m := e.metric(name, help, dto.MetricType_GAUGE, labels)
	if m != nil {
		m.Gauge = &dto.Gauge{Value: &v}
	}
	return m != nil
}

func (e *emitter) metric(name, help string, t dto.MetricType, labels []string) *dto.Metric {
	f := e.fams[name]
	if f == nil {
		n, h := name, help
		f = &dto.MetricFamily{Name: &n, Help: &h, Type: t.Enum()}
		e.fams[name] = f
	} else if f.GetType() != t || !sameLabelNames(f.Metric[0], labels) {
		return nil
	}
	pairs := make([]dto.LabelPair, len(labels)/2)
	m := &dto.Metric{Label: make([]*dto.LabelPair, len(pairs))}
	for i := range pairs {
		ln := e.names[labels[2*i]]
		if ln == nil {
			s := labels[2*i]
			ln = &s
			e.names[s] = ln
		}
		pairs[i] = dto.LabelPair{Name: ln, Value: &labels[2*i+1]}
		m.Label[i] = &pairs[i]
	}
	slices.SortFunc(m.Label, func(a, b *dto.LabelPair) int { return strings.Compare(*a.Name, *b.Name) })
	f.Metric = append(f.Metric, m)
	return m
}

// sameLabelNames says labels (name, value pairs) have the names of m's.
func sameLabelNames(m *dto.Metric, labels []string) bool {
	if len(m.Label) != len(labels)/2 {
		return false
	}
	for i := 0; i < len(labels); i += 2 {
		if !slices.ContainsFunc(m.Label, func(p *dto.LabelPair) bool { return p.GetName() == labels[i] }) {
			return false
		}
	}
	return true
}

// families returns the families by name.
func (e *emitter) families() []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(e.fams))
	for _, n := range slices.Sorted(maps.Keys(e.fams)) {
		out = append(out, e.fams[n])
	}
	return out
}

// metricWord makes a module name fit a metric name.
func metricWord(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return '_'
	}, s)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// countingDeployer counts the deploys and undeploys the API passes on.
type countingDeployer struct {
	api.Deployer
	mu  sync.Mutex
	ops map[[2]string]uint64
}

func (c *countingDeployer) Deploy(ctx context.Context, req deploy.Request) (deploy.Record, error) {
	r, err := c.Deployer.Deploy(ctx, req)
	c.count("deploy", err)
	return r, err
}

func (c *countingDeployer) Undeploy(ctx context.Context, kind deploy.Kind, name string, instance int) error {
	err := c.Deployer.Undeploy(ctx, kind, name, instance)
	c.count("undeploy", err)
	return err
}

func (c *countingDeployer) count(op string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ops == nil {
		c.ops = map[[2]string]uint64{}
	}
	c.ops[[2]string{op, errdefs.Kind(err)}]++
}

func (c *countingDeployer) counts() []ebpfmanager.OperationCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ebpfmanager.OperationCount, 0, len(c.ops))
	for k, n := range c.ops {
		out = append(out, ebpfmanager.OperationCount{Operation: k[0], Error: k[1], Count: n})
	}
	sort.Slice(out, func(a, b int) bool {
		return out[a].Operation+"\x00"+out[a].Error < out[b].Operation+"\x00"+out[b].Error
	})
	return out
}
