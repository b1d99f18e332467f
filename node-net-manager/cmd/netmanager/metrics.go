package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
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
// for: the daemon's own samples, read at scrape time, then the Go runtime's
// and the process's from a registry. The text format (the default, and what
// Prometheus asks for unless told otherwise) is written by textEmitter into
// one buffer sent with its length; protobuf goes through the library's
// encoder from metric families.
func metricsHandler(src metricsSources) http.Handler {
	if src.log == nil {
		src.log = logrus.StandardLogger()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The runtime's and the process's metrics (files of /proc) are
		// gathered while ours are read.
		type gathered struct {
			fams []*dto.MetricFamily
			err  error
		}
		done := make(chan gathered, 1)
		go func() {
			fams, err := reg.Gather()
			done <- gathered{fams, err}
		}()
		format := expfmt.Negotiate(r.Header)
		text := format.FormatType() == expfmt.TypeTextPlain
		var te *textEmitter
		var fe *emitter
		if text {
			te = newTextEmitter()
			defer te.release()
			collect(te, src)
		} else {
			fe = newEmitter()
			collect(fe, src)
		}
		runtime := <-done
		if runtime.err != nil {
			httpjson.WriteError(w, fmt.Errorf("gather runtime metrics: %w", runtime.err))
			return
		}
		w.Header().Set("Content-Type", string(format))
		if text {
			writeText(w, src.log, te, runtime.fams)
			return
		}
		enc := expfmt.NewEncoder(w, format)
		for _, f := range append(fe.families(), runtime.fams...) {
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

// textBufs are the text scrapes' buffers (~265 kB for 10 instances on 50
// veths), reused so a scrape does not grow one from nothing.
var textBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// writeText writes the text exposition: ours (e's), then the runtime's.
func writeText(w http.ResponseWriter, log logrus.FieldLogger, e *textEmitter, runtime []*dto.MetricFamily) {
	buf := textBufs.Get().(*bytes.Buffer)
	defer textBufs.Put(buf)
	buf.Reset()
	buf.Write(e.appendTo(buf.AvailableBuffer()))
	for _, f := range runtime {
		if _, err := expfmt.MetricFamilyToText(buf, f); err != nil {
			log.WithError(err).Debug("metrics: a runtime family left out")
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	if _, err := w.Write(buf.Bytes()); err != nil {
		log.WithError(err).Debug("metrics: the scrape ended early")
	}
}

// collect passes the sources' samples to e.
func collect(e sink, src metricsSources) {
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
}

func collectProxy(e sink, s proxy.Stats) {
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

func collectEBPF(e sink, m ebpfmanager.Metrics) {
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
		for _, d := range in.Drops {
			e.counter("netmanager_drops_total", "Packets the instance's data plane dropped, by reason (bpf/reasons.h nm_drop).", float64(d.Count), append(id[:4:4], "reason", d.Reason)...)
		}
		refused := collectSamples(e, id, in.Module, in.Samples)
		e.gauge("netmanager_ebpf_scrape_error", "1 when some of the instance's samples could not be read in this scrape.", boolValue(in.Error != nil || refused), id...)
	}
	collectForeign(e, m.Foreign)
}

// collectForeign exports the programs on our hooks that are not ours: how
// many on each hook, and each that runs before our chain (its accept or
// drop ends the chain: our modules never see the packet) by program id and
// name. Only hooks that have one are exported: a hook whose foreign
// programs are gone leaves no series behind.
func collectForeign(e sink, fs []ebpfmanager.ForeignProgram) {
	type hook struct{ iface, hook string }
	count := map[hook]int{}
	for _, f := range fs {
		count[hook{f.Interface, f.Hook.String()}]++
	}
	hooks := slices.SortedFunc(maps.Keys(count), func(a, b hook) int {
		return cmp.Or(strings.Compare(a.iface, b.iface), strings.Compare(a.hook, b.hook))
	})
	for _, h := range hooks {
		e.gauge("netmanager_ebpf_foreign_programs", "Programs on a hook the manager chains on that are not the manager's (another agent's).",
			float64(count[h]), "interface", h.iface, "hook", h.hook)
	}
	for _, f := range fs {
		if f.EndsChain {
			e.gauge("netmanager_ebpf_foreign_ends_chain", "1 for each foreign program that runs before the manager's chain: its accept or drop ends the chain.",
				1, "interface", f.Interface, "hook", f.Hook.String(), "id", strconv.FormatUint(uint64(f.ID), 10), "name", f.Name)
		}
	}
}

// collectSamples exports a module's samples as
// netmanager_module_<module>_<name>, with the instance's labels first, then
// the module's own in name order.
func collectSamples(e sink, id []string, modName string, ms []module.Metric) (refused bool) {
	prefix := "netmanager_module_" + metricWord(modName) + "_"
	var l []string
	var names [][2]string // a sample's Name and its metric's name, made once
	for _, s := range ms {
		name := ""
		for _, n := range names {
			if n[0] == s.Name {
				name = n[1]
				break
			}
		}
		if name == "" {
			name = prefix + s.Name
			names = append(names, [2]string{s.Name, name})
		}
		l = append(l[:0], id...)
		for k, v := range s.Labels {
			// insert (k, v) among the module's pairs so far, in name order
			l = append(l, k, v)
			for i := len(l) - 2; i > len(id) && l[i-2] > k; i -= 2 {
				l[i], l[i+1], l[i-2], l[i-1] = l[i-2], l[i-1], k, v
			}
		}
		ok := false
		if s.Gauge {
			ok = e.gauge(name, s.Help, s.Value, l...)
		} else {
			ok = e.counter(name, s.Help, s.Value, l...)
		}
		refused = refused || !ok
	}
	return refused
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
