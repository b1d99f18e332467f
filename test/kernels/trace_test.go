//go:build kernelmatrix

package kernels

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/trace"
	"github.com/oakestra/netmanager/node-net-manager/client"
)

// traceWait is how long a trace may take to show what the traffic makes
// (attaching the tracing programs under software emulation included).
const traceWait = 90 * time.Second

// The tracer on this kernel, through the daemon's HTTP API, on the scenario's
// chain (packet counter → firewall on srv only → eBPF proxy): a denied ping's
// path ends in the firewall's drop naming its rule, an allowed flow to the
// service IP ends in the proxy's redirect, the filters select exactly what
// they say, nothing stays attached after a trace, and the drop monitor stays
// within its rate under a flood without slowing the data path down.
func TestTraceAcrossKernels(t *testing.T) {
	s := newScenario(t, expectedMode(t))
	tr := s.newTracer(t)
	if runtime.GOARCH == "arm64" { // the daemon refuses tracing there (trace.archRefusal)
		t.Run("refused on arm64", tr.refusedArch)
		t.Run("drop monitor", tr.dropMonitor)
		s.teardown(t, s.pins, s.state)
		return
	}
	t.Run("denied ping", tr.deniedPing)
	t.Run("allowed flow", tr.allowedFlow)
	t.Run("filters", tr.filters)
	t.Run("drop monitor", tr.dropMonitor)
	s.teardown(t, s.pins, s.state)
}

// refusedArch: on arm64, GET /ebpf/trace is a 422 naming why, and nothing
// is attached.
func (tr *tracer) refusedArch(t *testing.T) {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := tr.d.Client.Stream(c, "/ebpf/trace?count=1", func([]byte) error { return nil })
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 422 || !strings.Contains(ce.Message, "tracing is refused on arm64: Debian's arm64 6.12 kernel panicked") {
		t.Fatalf("GET /ebpf/trace on arm64: %v, want a 422 refusing tracing on arm64", err)
	}
	tr.assertNoTracing(t, "after the refusal")
	t.Logf("MATRIX: trace on %s: refused: %s", release(t), ce.Message)
}

// tracer holds what the trace tests need of the scenario.
type tracer struct {
	*scenario
	cliVeth, cliAddr, rr string
	infos                []ebpfmanager.Info
	progs                []uint32 // every program of ours attached anywhere
}

func (s *scenario) newTracer(t *testing.T) *tracer {
	t.Helper()
	tr := &tracer{scenario: s, cliVeth: s.hostVeth(t, "app.ns.cli.ns"), cliAddr: s.addrOf(t, "app.ns.cli.ns"),
		rr: s.serviceIP(t, "app.ns.srv.ns")}
	s.get(t, "/ebpf", &tr.infos)
	seen := map[uint32]bool{}
	for _, in := range tr.infos {
		for _, a := range in.Attachments {
			if !seen[a.ProgramID] {
				seen[a.ProgramID] = true
				tr.progs = append(tr.progs, a.ProgramID)
			}
		}
	}
	t.Logf("MATRIX: trace on %s: chains %s %s %v, %s %s %v; %s %s %v", release(t), tr.cliVeth, "ingress", tr.chain(tr.cliVeth, "ingress"),
		s.srvVeth, "egress", tr.chain(s.srvVeth, "egress"), s.srvVeth, "ingress", tr.chain(s.srvVeth, "ingress"))
	return tr
}

// chain is the modules the daemon reports on a veth's hook, in chain order.
func (tr *tracer) chain(veth, hook string) []string {
	type prog struct {
		prio int
		name string
	}
	var ps []prog
	for _, in := range tr.infos {
		for _, a := range in.Attachments {
			if a.Interface == veth && a.Hook == hook {
				ps = append(ps, prog{in.Priority, in.Name})
			}
		}
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].prio < ps[j].prio })
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.name
	}
	return names
}

// deniedPing: ping from cli to srv, traced on srv's veth, shows the packet
// counter's next and the firewall's drop by rule "denyin", and no proxy hop.
func (tr *tracer) deniedPing(t *testing.T) {
	want := tr.chain(tr.srvVeth, "egress")
	if len(want) != 2 || want[0] != "packetcounter" || want[1] != "firewall" {
		t.Fatalf("the chain into srv on %s is %v, want [packetcounter firewall]", tr.srvVeth, want)
	}
	run := tr.startTrace(t, "/ebpf/trace", url.Values{"iface": {tr.srvVeth}, "proto": {"icmp"}, "count": {"3"}})
	stop := tr.traffic(t, "ping")
	paths := run.end(t, traceWait)
	stop()
	if len(paths) != 3 {
		t.Fatalf("count=3: %d paths: %s", len(paths), show(paths))
	}
	for _, p := range paths {
		if p.Interface != tr.srvVeth || p.Hook != "egress" || p.Direction != "in" || p.Proto != "icmp" || p.Src != tr.cliAddr || p.Dst != tr.srvAddr {
			t.Fatalf("a path of the denied ping: %s", show([]ebpfmanager.PacketPath{p}))
		}
		assertHops(t, p, want, "drop")
		if fw := p.Hops[1]; fw.Reason != "rule" || fw.DetailName != "denyin" {
			t.Fatalf("the firewall's drop says reason %q, rule %q (detail %d); want rule \"denyin\"", fw.Reason, fw.DetailName, fw.Detail)
		}
	}
	t.Logf("denied ping: %s", show(paths[:1]))
	tr.assertNoTracing(t, "after a trace ended by its count")
}

// allowedFlow: TCP from cli to srv's service IP, traced on cli's veth as it
// leaves cli, goes through the chain the daemon reports there and ends in the
// proxy's redirect; a filter on the service IP still matches the proxy's hop
// (it sees the packet before its DNAT). Straight to srv's address, the flow
// passes the firewall (next) on srv's veth.
func (tr *tracer) allowedFlow(t *testing.T) {
	want := tr.chain(tr.cliVeth, "ingress")
	if len(want) == 0 || want[0] != "packetcounter" || want[len(want)-1] != "proxy" {
		t.Fatalf("the chain out of cli on %s is %v, want packetcounter first and the proxy last", tr.cliVeth, want)
	}
	run := tr.startTrace(t, "/ebpf/trace", url.Values{"iface": {tr.cliVeth}, "direction": {"out"}, "host": {tr.rr},
		"proto": {"tcp"}, "port": {"8080"}, "count": {"5"}})
	stop := tr.traffic(t, "rr")
	paths := run.end(t, traceWait)
	stop()
	for _, p := range paths {
		if p.Interface != tr.cliVeth || p.Hook != "ingress" || p.Direction != "out" || p.Proto != "tcp" || p.Src != tr.cliAddr || p.Dst != tr.rr || p.Dport != 8080 {
			t.Fatalf("a path of the flow to %s:8080: %s", tr.rr, show([]ebpfmanager.PacketPath{p}))
		}
		assertHops(t, p, want, "redirect")
	}
	t.Logf("allowed flow to the service IP: %s", show(paths[:1]))

	want = tr.chain(tr.srvVeth, "egress")
	run = tr.startTrace(t, "/ebpf/trace", url.Values{"iface": {tr.srvVeth}, "direction": {"in"}, "proto": {"tcp"}, "port": {"8080"}, "count": {"3"}})
	stop = tr.traffic(t, "direct")
	paths = run.end(t, traceWait)
	stop()
	for _, p := range paths {
		if p.Src != tr.cliAddr || p.Dst != tr.srvAddr || p.Dport != 8080 {
			t.Fatalf("a path of the flow to %s:8080: %s", tr.srvAddr, show([]ebpfmanager.PacketPath{p}))
		}
		assertHops(t, p, want, "next")
	}
	t.Logf("allowed flow to srv's address: %s", show(paths[:1]))
	tr.assertNoTracing(t, "after the flow's traces")
}

// assertHops checks that p went through the modules of chain in order, each
// saying next, the last saying last.
func assertHops(t *testing.T, p ebpfmanager.PacketPath, chain []string, last string) {
	t.Helper()
	ok := len(p.Hops) == len(chain)
	for i := 0; ok && i < len(chain); i++ {
		v := "next"
		if i == len(chain)-1 {
			v = last
		}
		ok = p.Hops[i].Module == chain[i] && p.Hops[i].Verdict == v
	}
	if !ok {
		t.Fatalf("path %s: want the hops %v, all next but the last %s", show([]ebpfmanager.PacketPath{p}), chain, last)
	}
}

// show prints paths for a failure message.
func show(paths []ebpfmanager.PacketPath) string {
	var b strings.Builder
	for _, p := range paths {
		j, _ := json.Marshal(p)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// assertNoTracing fails when a tracing link still targets one of our
// programs (fentry/fexit of a trace that ended); detaching may take a
// moment after the stream ends.
func (tr *tracer) assertNoTracing(t *testing.T, when string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n, held := tr.tracingLinks(t), tr.daemonTracingLinks(t)
		if n == 0 && held == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d tracing links still target our programs %v, the daemon holds %d tracing links", when, n, tr.progs, held)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tracingLinks counts the tracing links to any of our programs.
func (tr *tracer) tracingLinks(t *testing.T) int {
	t.Helper()
	total := 0
	for _, id := range tr.progs {
		total += linksTo(t, id)
	}
	return total
}

// daemonTracingLinks counts the tracing links (fentry, fexit, tp_btf) the
// daemon holds open: the drop monitor's kfree_skb tracepoint targets no
// program of ours.
func (tr *tracer) daemonTracingLinks(t *testing.T) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fdinfo", tr.d.cmd.Process.Pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("the daemon's fds: %v", err)
	}
	n := 0
	for _, fd := range fds {
		info, err := os.ReadFile(filepath.Join(dir, fd.Name()))
		if err == nil && linkTypeTracing.Match(info) {
			n++
		}
	}
	return n
}

var linkTypeTracing = regexp.MustCompile(`(?m)^link_type:\s+tracing\b`)

// linksTo is trace.LinksTo, tried again for a few seconds when the link
// iteration fails: on 6.1 a link being created or released meanwhile made
// BPF_LINK_GET_FD_BY_ID fail with EAGAIN.
func linksTo(t *testing.T, prog uint32) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := trace.LinksTo(prog)
		if err == nil {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("tracing links to program %d: %v", prog, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// targets is the programs a trace with q attaches to: ours on the veths
// and hooks it selects.
func (tr *tracer) targets(q url.Values) []uint32 {
	iface := q.Get("iface")
	if svc := q.Get("service"); svc != "" {
		iface = map[string]string{"app.ns.cli.ns": tr.cliVeth, "app.ns.srv.ns": tr.srvVeth}[svc]
	}
	hook := map[string]string{"in": "egress", "out": "ingress"}[q.Get("direction")]
	seen := map[uint32]bool{}
	var ids []uint32
	for _, in := range tr.infos {
		for _, a := range in.Attachments {
			if (iface == "" || a.Interface == iface) && (hook == "" || a.Hook == hook) && !seen[a.ProgramID] {
				seen[a.ProgramID] = true
				ids = append(ids, a.ProgramID)
			}
		}
	}
	return ids
}

// traceRun is one GET /ebpf/trace or /ebpf/drops in flight.
type traceRun struct {
	mu     sync.Mutex
	paths  []ebpfmanager.PacketPath
	done   chan struct{}
	err    error
	cancel context.CancelFunc
	start  time.Time
}

func (tr *tracer) startTrace(t *testing.T, route string, q url.Values) *traceRun {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	r := &traceRun{done: make(chan struct{}), cancel: cancel, start: time.Now()}
	path := route + "?" + q.Encode()
	go func() {
		defer close(r.done)
		err := tr.d.Client.Stream(c, path, func(line []byte) error {
			var p ebpfmanager.PacketPath
			if err := json.Unmarshal(line, &p); err != nil {
				return fmt.Errorf("a line of %s: %q: %w", path, line, err)
			}
			r.mu.Lock()
			r.paths = append(r.paths, p)
			r.mu.Unlock()
			return nil
		})
		if err != nil {
			err = fmt.Errorf("GET %s: %w", path, err)
		}
		r.err = err
	}()
	if route == "/ebpf/trace" {
		tr.awaitAttached(t, r, tr.targets(q))
	}
	return r
}

// awaitAttached waits until the trace's fentry and fexit are on every
// program it targets: traffic sent while it attaches one program after
// another shows only some of a packet's hops.
func (tr *tracer) awaitAttached(t *testing.T, r *traceRun, progs []uint32) {
	t.Helper()
	deadline := time.Now().Add(traceWait)
	for i := 0; i < len(progs); {
		if linksTo(t, progs[i]) >= 2 {
			i++
			continue
		}
		select {
		case <-r.done:
			t.Fatalf("the trace ended before it attached: %v", r.err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the trace's programs are not on program %d within %v", progs[i], traceWait)
		}
	}
}

func (r *traceRun) snapshot() []ebpfmanager.PacketPath {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ebpfmanager.PacketPath(nil), r.paths...)
}

// end waits for the trace to end by itself (count or duration).
func (r *traceRun) end(t *testing.T, within time.Duration) []ebpfmanager.PacketPath {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(within):
		r.cancel()
		<-r.done
		t.Fatalf("the trace did not end within %v; it had %d lines:\n%s", within, len(r.snapshot()), show(r.snapshot()))
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.snapshot()
}

// waitFor waits until the trace has n paths (with hops), then ends it by
// cancelling the request.
func (r *traceRun) waitFor(t *testing.T, n int, within time.Duration) []ebpfmanager.PacketPath {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(withHops(r.snapshot())) < n {
		select {
		case <-r.done:
			t.Fatalf("the trace ended (%v) with %d paths, want %d", r.err, len(r.snapshot()), n)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.cancel()
			<-r.done
			t.Fatalf("%d paths within %v, want %d:\n%s", len(r.snapshot()), within, n, show(r.snapshot()))
		}
	}
	r.cancel()
	<-r.done
	return r.snapshot()
}

func withHops(ps []ebpfmanager.PacketPath) []ebpfmanager.PacketPath {
	var out []ebpfmanager.PacketPath
	for _, p := range ps {
		if len(p.Hops) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// traffic keeps sending kinds of traffic from cli until stop: "ping" (to
// srv, denied), "rr" (TCP to srv's service IP on 8080, allowed), "direct"
// (TCP to srv's address on 8080, allowed).
func (tr *tracer) traffic(t *testing.T, kinds ...string) (stop func()) {
	t.Helper()
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for _, k := range kinds {
		send := map[string]func(){
			"ping":   func() { _, _ = tr.cli.ns.Exec("ping", "-c", "1", "-W", "1", tr.srvAddr) },
			"rr":     func() { reachable(tr.cli, "tcp4", net.JoinHostPort(tr.rr, "8080"), "srv", passWait) },
			"direct": func() { reachable(tr.cli, "tcp4", net.JoinHostPort(tr.srvAddr, "8080"), "srv", passWait) },
		}[k]
		if send == nil {
			t.Fatalf("traffic %q", k)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-quit:
					return
				default:
				}
				send()
				time.Sleep(150 * time.Millisecond)
			}
		}()
	}
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}
