package ebpfmanager

import (
	"context"
	"errors"
	"os"
	"strconv"
	"time"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/ebpfManager/trace"
)

const (
	// traceResync is how often a trace reads the chains again (instances
	// loaded, deleted or updated, services deployed).
	traceResync = 500 * time.Millisecond
	// traceIdle is how long a packet's path waits for its next hop: hops of
	// one packet come within microseconds.
	traceIdle = 100 * time.Millisecond
)

// errTraceDone ends a trace that emitted its count.
var errTraceDone = errors.New("trace done")

// tracing is one running Trace.
type tracing struct {
	m        *Manager
	o        TraceOptions
	s        TraceSession
	emit     func(PacketPath) error
	cookies  map[targetKey]uint64
	next     uint64
	byCookie map[uint64]traceTarget
	v        traceView
	g        *grouper
	sent     int
	lost     uint64
	// since is when the last sync that attached a new target ended: a
	// packet before it may have passed programs not yet traced, so its
	// hops are not shown (they would make a path with hops missing).
	since time.Time
}

// sync attaches to the view's targets and detaches from the others. A
// target keeps its cookie while its program stays the same.
func (t *tracing) sync(v traceView) error {
	t.v = v
	if t.byCookie == nil {
		t.byCookie = map[uint64]traceTarget{}
	}
	ts := make([]trace.Target, 0, len(v.targets))
	added := false
	for _, tt := range v.targets {
		c, ok := t.cookies[tt.key]
		if !ok {
			added = true
			t.next++
			c = t.next
			t.cookies[tt.key] = c
		}
		t.byCookie[c] = tt // kept after detach: its events may still be queued
		ts = append(ts, trace.Target{Program: tt.program, Func: tt.key.hook.Program(), Cookie: c})
	}
	if err := t.s.SetTargets(ts); err != nil {
		return err
	}
	if added {
		t.since = time.Now()
	}
	return nil
}

func (t *tracing) resync() error {
	t.m.mu.Lock()
	v, err := t.m.traceView(t.o)
	t.m.mu.Unlock()
	if err != nil {
		v = traceView{ifaces: t.v.ifaces} // the service went away: nothing to trace now
	}
	return t.sync(v)
}

func (t *tracing) run(ctx context.Context) error {
	err := readLoop(ctx, t.o.Duration, t.s.Read, t.event, t.idle, t.resync)
	if err != nil {
		return err
	}
	if err := t.idle(); err != nil && !errors.Is(err, errTraceDone) {
		return err
	}
	return nil
}

// readLoop runs a trace or the drop monitor until ctx ends or duration (0:
// none) passes: it reads a record with a deadline of traceIdle (or the end)
// and hands it to got, calls idle when none came, and resync every
// traceResync. got or idle returning errTraceDone ends it without error.
func readLoop[T any](ctx context.Context, duration time.Duration, read func(time.Time) (T, error),
	got func(T) error, idle, resync func() error) error {
	var end time.Time
	if duration > 0 {
		end = time.Now().Add(duration)
	}
	next := time.Now().Add(traceResync)
	for ctx.Err() == nil && (end.IsZero() || time.Now().Before(end)) {
		dl := time.Now().Add(traceIdle)
		if !end.IsZero() && end.Before(dl) {
			dl = end
		}
		r, err := read(dl)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			err = idle()
		case err != nil:
			return err
		default:
			err = got(r)
		}
		if errors.Is(err, errTraceDone) {
			return nil
		}
		if err != nil {
			return err
		}
		if time.Now().After(next) {
			next = time.Now().Add(traceResync)
			if err := resync(); err != nil {
				return err
			}
		}
	}
	return nil
}

// event adds a hop and emits the paths it completed.
func (t *tracing) event(e trace.Event) error {
	tt, ok := t.byCookie[e.Cookie]
	if !ok || e.Time.Before(t.since) {
		return nil
	}
	for _, p := range t.g.add(e, tt, t.v.ifaces[e.Ifindex]) {
		if err := t.send(p); err != nil {
			return err
		}
	}
	return nil
}

// idle emits the paths waiting for a hop and a notice of events lost.
func (t *tracing) idle() error {
	for _, p := range t.g.flush() {
		if err := t.send(p); err != nil {
			return err
		}
	}
	return emitSuppressed(t.s, &t.lost, t.emit)
}

// emitSuppressed emits a notice of what the kernel refused (l.Lost) since
// *seen, the count noticed before, and moves *seen on. Nothing new, or an
// error reading the count, emits nothing.
func emitSuppressed(l interface{ Lost() (uint64, error) }, seen *uint64, emit func(PacketPath) error) error {
	lost, err := l.Lost()
	if err != nil || lost <= *seen {
		return nil
	}
	n := lost - *seen
	*seen = lost
	return emit(PacketPath{Time: time.Now(), Suppressed: n})
}

func (t *tracing) send(p PacketPath) error {
	if t.o.Verdict != "" && p.Hops[len(p.Hops)-1].Verdict != t.o.Verdict {
		return nil
	}
	if err := t.emit(p); err != nil {
		return err
	}
	t.sent++
	if t.o.Count > 0 && t.sent >= t.o.Count {
		return errTraceDone
	}
	return nil
}

// grouper gathers consecutive hops of one packet on one CPU into its path.
type grouper struct {
	pending map[uint32]*pendingPath // by CPU
}

type pathKey struct {
	skb     uint64
	ifindex int
	hook    module.Hook
}

type pendingPath struct {
	key  pathKey
	path PacketPath
}

func newGrouper() *grouper { return &grouper{pending: map[uint32]*pendingPath{}} }

// add appends e's hop to its packet's path and returns the paths that are
// complete: a verdict other than next ends a path, so does the last of our
// programs on the hook, and a hop of another packet on the same CPU ends the
// one before.
func (g *grouper) add(e trace.Event, tt traceTarget, ti traceIface) []PacketPath {
	var done []PacketPath
	k := pathKey{e.Skb, e.Ifindex, tt.key.hook}
	p := g.pending[e.CPU]
	if p != nil && p.key != k {
		done = append(done, p.path)
		p = nil
	}
	if p == nil {
		p = &pendingPath{key: k, path: newPath(e, tt.key.hook, ti)}
		g.pending[e.CPU] = p
	}
	p.path.Hops = append(p.path.Hops, newHop(e, tt))
	if e.Verdict != -1 || ti.last[tt.key.hook] == tt.key.prog {
		done = append(done, p.path)
		delete(g.pending, e.CPU)
	}
	return done
}

// flush returns every pending path.
func (g *grouper) flush() []PacketPath {
	var done []PacketPath
	for cpu, p := range g.pending {
		done = append(done, p.path)
		delete(g.pending, cpu)
	}
	return done
}

func newPath(e trace.Event, h module.Hook, ti traceIface) PacketPath {
	p := PacketPath{Time: e.Time, Interface: ti.name, Ifindex: e.Ifindex, Service: ti.service, Hook: h.String(),
		Sport: e.Sport, Dport: e.Dport, Len: e.Len}
	in := h == module.HookIngress
	if ti.service != "" {
		in = !in
	}
	p.Direction = "out"
	if in {
		p.Direction = "in"
	}
	if e.Src.IsValid() {
		p.Src, p.Dst, p.Proto = e.Src.String(), e.Dst.String(), protoName(e.Proto)
	}
	return p
}

func newHop(e trace.Event, tt traceTarget) Hop {
	h := Hop{Instance: tt.instance, Module: tt.module, Priority: tt.priority, Verdict: verdictName(e.Verdict)}
	if e.Verdict == 2 {
		h.Reason = dropReasonName(tt.mod, e.Reason)
		if e.Reason != 0 {
			h.Detail = e.Detail
			if d, ok := tt.mod.(module.DropDetailer); ok {
				if name, ok := d.DropDetail(e.Reason, e.Detail); ok {
					h.DetailName = name
				}
			}
		}
	}
	return h
}

// protoName names an IP protocol number.
func protoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "icmpv6"
	case 132:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// ParseProto reads a protocol name or number (0: any).
func ParseProto(s string) (uint8, bool) {
	for _, p := range []uint8{1, 6, 17, 58, 132} {
		if s == protoName(p) {
			return p, true
		}
	}
	n, err := strconv.ParseUint(s, 10, 8)
	return uint8(n), err == nil
}
