package ebpfmanager

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/ebpfManager/trace"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// fakeTracer hands out one fakeSession that replays queued events.
type fakeTracer struct {
	mu      sync.Mutex
	filter  trace.Filter
	s       *fakeSession
	started int
	refuse  error // what Supported answers
	// The drop monitor's: its filter and session (monitor_test.go).
	dropFilter trace.DropFilter
	drops      *fakeDropSession
}

func (f *fakeTracer) Supported() error { return f.refuse }

func (f *fakeTracer) Start(flt trace.Filter) (TraceSession, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filter = flt
	f.started++
	return f.s, nil
}

// fakeRing is what the fake trace and drop sessions share: the lost count
// Lost returns and whether Close was called.
type fakeRing struct {
	mu     sync.Mutex
	lost   uint64
	closed bool
}

func (s *fakeRing) Lost() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost, nil
}

func (s *fakeRing) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

type fakeSession struct {
	fakeRing
	events  chan trace.Event
	targets [][]trace.Target // every SetTargets
}

func newFakeSession(evs ...trace.Event) *fakeSession {
	s := &fakeSession{events: make(chan trace.Event, 100)}
	for _, e := range evs {
		s.events <- e
	}
	return s
}

func (s *fakeSession) SetTargets(ts []trace.Target) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.targets = append(s.targets, ts)
	return nil
}

func (s *fakeSession) last() []trace.Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.targets[len(s.targets)-1]
}

func (s *fakeSession) Read(deadline time.Time) (trace.Event, error) {
	select {
	case e := <-s.events:
		if e.Time.IsZero() { // queued before the trace: it happens once read
			e.Time = time.Now()
		}
		return e, nil
	case <-time.After(time.Until(deadline)):
		return trace.Event{}, os.ErrDeadlineExceeded
	}
}

// traceHarness: counter (10) and dropper (20) on service a's veth oak5.
func traceHarness(t *testing.T, s *fakeSession) (*harness, *fakeTracer) {
	h := newHarness(t, ModeTCX)
	ft := &fakeTracer{s: s}
	h.m.opts.Tracer = ft
	h.load(t, "counter", 10)
	h.load(t, "dropper", 20)
	if err := h.deploy(t, svc("a", 5)); err != nil {
		t.Fatal(err)
	}
	return h, ft
}

func hop(cookie uint64, cpu uint32, skb uint64, verdict int32) trace.Event {
	return trace.Event{Cookie: cookie, CPU: cpu, Skb: skb, Ifindex: 5, Verdict: verdict, Proto: 6, Len: 60,
		Src: netip.MustParseAddr("10.18.0.5"), Dst: netip.MustParseAddr("10.30.0.1"), Sport: 1000, Dport: 80}
}

func collect(t *testing.T, h *harness, o TraceOptions) ([]PacketPath, error) {
	var out []PacketPath
	if o.Duration == 0 {
		o.Duration = 400 * time.Millisecond
	}
	err := h.m.Trace(context.Background(), o, func(p PacketPath) error { out = append(out, p); return nil })
	return out, err
}

// TestTraceGroupsHops: hops of one packet on one CPU make one path, in chain
// order, interleaved with another CPU's packet; the last of our programs
// ends a path that only went next.

func TestTraceGroupsHops(t *testing.T) {
	drop := hop(2, 0, 0xa, 2)
	drop.Reason, drop.Detail = 3, 7
	// The last event: a new packet in a recycled sk_buff, after the first
	// one's path ended at the last program of the chain.
	s := newFakeSession(hop(1, 0, 0xa, -1), hop(1, 1, 0xb, -1), drop, hop(2, 1, 0xb, -1), hop(1, 1, 0xb, -1))
	h, ft := traceHarness(t, s)
	paths, err := collect(t, h, TraceOptions{Service: "a", Direction: "out"})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 || len(paths[2].Hops) != 1 {
		t.Fatalf("paths %+v, want 3, the last of one hop", paths)
	}
	a, b := paths[0], paths[1]
	if a.Interface != "oak5" || a.Service != "a/0" || a.Hook != "ingress" || a.Direction != "out" || a.Proto != "tcp" ||
		a.Src != "10.18.0.5" || a.Dport != 80 || len(a.Hops) != 2 {
		t.Fatalf("path %+v", a)
	}
	if a.Hops[0].Module != "counter" || a.Hops[0].Verdict != "next" || a.Hops[1].Module != "dropper" ||
		a.Hops[1].Verdict != "drop" || a.Hops[1].Reason != "reason 3" || a.Hops[1].Detail != 7 || a.Hops[1].Priority != 20 {
		t.Fatalf("hops %+v", a.Hops)
	}
	if len(b.Hops) != 2 || b.Hops[1].Verdict != "next" {
		t.Fatalf("second path %+v", b)
	}
	ts := s.targets[0]
	if len(ts) != 2 || ts[0].Func != "nm_ingress" || ts[1].Func != "nm_ingress" || ts[0].Cookie == ts[1].Cookie {
		t.Fatalf("targets %+v: want both nm_ingress", ts)
	}
	if len(ft.filter.Ifindexes) != 1 || ft.filter.Ifindexes[0] != 5 || !s.closed {
		t.Fatalf("filter %+v closed %v", ft.filter, s.closed)
	}
}

// A packet that went through the chain before the trace had attached to
// every program of it is not shown: its path would lack hops.
func TestTraceHidesPacketsBeforeAttach(t *testing.T) {
	// The first packet's first hop was not seen (its program not yet
	// traced); its second hop was, before the sync ended.
	early := hop(2, 0, 0xa, 2)
	early.Time = time.Now().Add(-time.Second)
	s := newFakeSession(early, hop(1, 0, 0xb, -1), hop(2, 0, 0xb, 2))
	h, _ := traceHarness(t, s)
	paths, err := collect(t, h, TraceOptions{Service: "a", Direction: "out"})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 1 || len(paths[0].Hops) != 2 || paths[0].Hops[0].Module != "counter" {
		t.Fatalf("paths %+v, want only the packet after the attach, with both hops", paths)
	}
}

// TestTraceVerdictAndCount: the verdict filter keeps paths ending so; the
// count ends the trace.
func TestTraceVerdictAndCount(t *testing.T) {
	evs := []trace.Event{hop(1, 0, 1, -1), hop(2, 0, 1, 2), hop(1, 0, 2, 0), hop(1, 0, 3, -1), hop(2, 0, 3, 2)}
	for _, c := range []struct {
		o    TraceOptions
		want []string // last verdicts
	}{
		{TraceOptions{Direction: "out"}, []string{"drop", "accept", "drop"}},
		{TraceOptions{Direction: "out", Verdict: "drop"}, []string{"drop", "drop"}},
		{TraceOptions{Direction: "out", Verdict: "accept"}, []string{"accept"}},
		{TraceOptions{Direction: "out", Count: 1, Duration: time.Hour}, []string{"drop"}},
	} {
		h, _ := traceHarness(t, newFakeSession(evs...))
		paths, err := collect(t, h, c.o)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range paths {
			got = append(got, p.Hops[len(p.Hops)-1].Verdict)
		}
		if len(got) != len(c.want) {
			t.Fatalf("%+v: verdicts %v, want %v", c.o, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Fatalf("%+v: verdicts %v, want %v", c.o, got, c.want)
			}
		}
	}
}

// TestTraceSelection: direction picks hooks; unknown names are not found;
// bad values are invalid; a drop monitor filters drops in the kernel.
func TestTraceSelection(t *testing.T) {
	s := newFakeSession()
	h, ft := traceHarness(t, s)
	if _, err := collect(t, h, TraceOptions{Service: "a", Direction: "in", Duration: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if ts := s.targets[0]; len(ts) != 2 || ts[0].Func != "nm_egress" {
		t.Fatalf("direction in on a service veth: targets %+v, want nm_egress", ts)
	}
	ft.drops = newFakeDropSession()
	if _, err := collect(t, h, TraceOptions{Drops: true, Rate: 1000, Duration: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if len(s.targets) != 1 || ft.started != 1 || ft.dropFilter.Rate == 0 || ft.dropFilter.Only || !ft.drops.closed {
		t.Fatalf("drop monitor: the tracer started %d times, filter %+v; want the kfree_skb monitor only", ft.started, ft.dropFilter)
	}
	for _, c := range []struct {
		o    TraceOptions
		want error
	}{
		{TraceOptions{Service: "nope"}, errdefs.ErrNotFound},
		{TraceOptions{Iface: "eth7"}, errdefs.ErrNotFound},
		{TraceOptions{Direction: "up"}, errdefs.ErrInvalid},
		{TraceOptions{Verdict: "maybe"}, errdefs.ErrInvalid},
		{TraceOptions{Drops: true, Service: "nope"}, errdefs.ErrNotFound},
		{TraceOptions{Drops: true, Direction: "up"}, errdefs.ErrInvalid},
	} {
		if _, err := collect(t, h, c.o); !errors.Is(err, c.want) {
			t.Fatalf("%+v: %v, want %v", c.o, err, c.want)
		}
	}
	if ft.started != 1 {
		t.Fatalf("refused traces started the tracer: %d starts", ft.started)
	}
}

// TestTraceFollowsChanges: an instance loaded during a trace is attached to,
// one deleted is detached from; lost events are reported.
func TestTraceFollowsChanges(t *testing.T) {
	s := newFakeSession()
	h, _ := traceHarness(t, s)
	done := make(chan []PacketPath)
	go func() {
		p, err := collect(t, h, TraceOptions{Service: "a", Direction: "out", Duration: 1500 * time.Millisecond})
		if err != nil {
			t.Error(err)
		}
		done <- p
	}()
	time.Sleep(100 * time.Millisecond)
	other := h.load(t, "other", 30)
	s.mu.Lock()
	s.lost = 5
	s.mu.Unlock()
	time.Sleep(700 * time.Millisecond)
	if n := len(s.last()); n != 3 {
		t.Fatalf("after a load: %d targets, want 3", n)
	}
	if err := h.m.Delete(other.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	if n := len(s.last()); n != 2 {
		t.Fatalf("after a delete: %d targets, want 2", n)
	}
	paths := <-done
	if len(paths) != 1 || paths[0].Suppressed != 5 || len(paths[0].Hops) != 0 {
		t.Fatalf("paths %+v, want one notice of 5 suppressed", paths)
	}
}

func TestPerCPURate(t *testing.T) {
	for _, c := range []struct {
		rate, per uint64
		cpus      int
	}{{1000, 500, 2}, {1000, 1000, 0}, {1, 1, 4}, {1000, 125, 8}} {
		if per, burst := perCPURate(c.rate, c.cpus); per != c.per || burst != per {
			t.Fatalf("perCPURate(%d, %d) = %d, %d", c.rate, c.cpus, per, burst)
		}
	}
}

func TestDirectionHooks(t *testing.T) {
	for _, c := range []struct {
		dir     string
		service bool
		want    []module.Hook
	}{
		{"in", true, []module.Hook{module.HookEgress}}, {"out", true, []module.Hook{module.HookIngress}},
		{"in", false, []module.Hook{module.HookIngress}}, {"out", false, []module.Hook{module.HookEgress}},
		{"", true, module.Hooks},
	} {
		got, err := hooksFor(c.dir, c.service)
		if err != nil || len(got) != len(c.want) || got[0] != c.want[0] {
			t.Fatalf("hooksFor(%q, %v) = %v, %v", c.dir, c.service, got, err)
		}
	}
}

// namer is a module that names its drops' reasons and details, as the
// firewall does (module.DropReasoner, module.DropDetailer).
type namer struct{ fakeModule }

func (*namer) DropReasons() map[uint32]string { return map[uint32]string{1: "rule"} }
func (*namer) DropDetail(reason, detail uint32) (string, bool) {
	if reason == 1 && detail == 4101 {
		return "denyin", true
	}
	return "", false
}

// TestHopNames: a drop's reason and detail as the module names them; a
// detail it does not name stays a number; a module that names nothing gives
// "reason N"; hops that are no drop carry neither.
func TestHopNames(t *testing.T) {
	drop := func(reason, detail uint32) trace.Event {
		return trace.Event{Verdict: 2, Reason: reason, Detail: detail}
	}
	for _, c := range []struct {
		mod  module.Module
		e    trace.Event
		want Hop
	}{
		{&namer{}, drop(1, 4101), Hop{Verdict: "drop", Reason: "rule", Detail: 4101, DetailName: "denyin"}},
		{&namer{}, drop(1, 4102), Hop{Verdict: "drop", Reason: "rule", Detail: 4102}},
		{&namer{}, drop(2, 4101), Hop{Verdict: "drop", Reason: "reason 2", Detail: 4101}},
		{&namer{}, drop(0, 4101), Hop{Verdict: "drop", Reason: "unspecified"}},
		{&fakeModule{}, drop(1, 4101), Hop{Verdict: "drop", Reason: "reason 1", Detail: 4101}},
		{&namer{}, trace.Event{Verdict: -1, Reason: 1, Detail: 4101}, Hop{Verdict: "next"}},
	} {
		if got := newHop(c.e, traceTarget{mod: c.mod}); got != c.want {
			t.Errorf("%T %+v: hop %+v, want %+v", c.mod, c.e, got, c.want)
		}
	}
}

// TestTraceRefused: a kernel that refuses tracing programs is a 422 naming
// it, decided before the tracer starts: no session, nothing attached. The
// drop monitor needs no trampoline: it runs there.
func TestTraceRefused(t *testing.T) {
	refusal := &trace.UnsupportedError{Kernel: errors.New("fexit program: load program: operation not permitted")}
	s := newFakeSession(hop(1, 0, 1, -1))
	h, ft := traceHarness(t, s)
	ft.refuse = refusal
	want := "cannot be processed: tracing needs BPF trampolines (fentry/fexit on BPF programs), which this kernel refuses: " +
		"fexit program: load program: operation not permitted; traces work on Debian's 6.1 and later kernels"
	ft.drops = newFakeDropSession()
	if _, err := collect(t, h, TraceOptions{Drops: true, Duration: time.Millisecond}); err != nil || !ft.drops.closed {
		t.Fatalf("drop monitor on a kernel that refuses fentry/fexit: %v (ran: %v)", err, ft.drops.closed)
	}
	for _, o := range []TraceOptions{{}, {Service: "a"}} {
		_, err := collect(t, h, o)
		if err == nil || err.Error() != want || errdefs.HTTPStatus(err) != 422 || !errors.Is(err, trace.ErrUnsupported) {
			t.Fatalf("trace %+v on a kernel that refuses tracing: %v (status %d), want %q (422)", o, err, errdefs.HTTPStatus(err), want)
		}
	}
	if ft.started != 0 || len(s.targets) != 0 {
		t.Fatalf("refused, yet the tracer started %d times with targets %v", ft.started, s.targets)
	}
	// The probe could not tell: the kernel's own load decides.
	ft.refuse = errors.New("probe tracing: load the target program: x")
	if _, err := collect(t, h, TraceOptions{Duration: time.Millisecond}); err != nil || ft.started != 1 {
		t.Fatalf("inconclusive probe: %v, started %d; want the trace to run", err, ft.started)
	}
}
