package ebpfmanager

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/ebpfManager/trace"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// Tracer starts trace sessions: fentry/fexit programs on the chain's
// programs (the real one is trace.Start; tests use a fake).
type Tracer interface {
	// Supported is nil when the kernel runs tracing programs on BPF
	// programs; a refusal is a trace.ErrUnsupported (trace.Supported).
	Supported() error
	Start(f trace.Filter) (TraceSession, error)
	// StartDrops starts the drop monitor (trace.StartDrops), which needs no
	// BPF trampoline.
	StartDrops(f trace.DropFilter) (DropSession, error)
}

// TraceSession is one running trace (trace.Session).
type TraceSession interface {
	SetTargets(ts []trace.Target) error
	Read(deadline time.Time) (trace.Event, error)
	Lost() (uint64, error)
	Close() error
}

type kernelTracer struct{}

func (kernelTracer) Supported() error                           { return trace.Supported() }
func (kernelTracer) Start(f trace.Filter) (TraceSession, error) { return trace.Start(f) }
func (kernelTracer) StartDrops(f trace.DropFilter) (DropSession, error) {
	return trace.StartDrops(f)
}

// TraceOptions selects what a trace shows (GET /ebpf/trace, /ebpf/drops).
type TraceOptions struct {
	Service   string // a service's veths (name, any instance)
	Iface     string // one interface
	Direction string // "in", "out" or "" (both); see hooksFor
	Proto     uint8
	Host      netip.Addr
	Port      uint16
	Verdict   string // a path's last verdict: drop, redirect, accept, next; "" any
	Count     int    // stop after this many paths (0: no limit)
	Duration  time.Duration
	// Drops runs the drop monitor instead (monitorDrops): a kfree_skb
	// tracepoint program, no trampoline; each path is the one dropping hop.
	Drops bool
	// Rate limits the events per second over the node (0: unlimited).
	Rate uint64
	// Started, if set, is called once the tracing programs are attached.
	Started func()
}

// PacketPath is one packet's way through a chain, or (Hops empty) a notice
// that Suppressed events were not shown.
type PacketPath struct {
	Time       time.Time `json:"time"`
	Interface  string    `json:"interface,omitempty"`
	Ifindex    int       `json:"ifindex,omitempty"`
	Service    string    `json:"service,omitempty"`
	Hook       string    `json:"hook,omitempty"`
	Direction  string    `json:"direction,omitempty"`
	Proto      string    `json:"proto,omitempty"`
	Src        string    `json:"src,omitempty"`
	Dst        string    `json:"dst,omitempty"`
	Sport      uint16    `json:"sport,omitempty"`
	Dport      uint16    `json:"dport,omitempty"`
	Len        uint32    `json:"len,omitempty"`
	Hops       []Hop     `json:"hops,omitempty"`
	Suppressed uint64    `json:"suppressed,omitempty"`
}

// Hop is one program's verdict on a packet.
type Hop struct {
	Instance string `json:"instance"`
	Module   string `json:"module"`
	Priority int    `json:"priority"`
	Verdict  string `json:"verdict"`
	Reason   string `json:"reason,omitempty"`
	Detail   uint32 `json:"detail,omitempty"`
	// DetailName names Detail where the module does (module.DropDetailer:
	// the firewall's rule id for the slot its data plane passed).
	DetailName string `json:"detailName,omitempty"`
}

// verdictName names a TC verdict as the chain reads it.
func verdictName(v int32) string {
	switch v {
	case -1:
		return "next"
	case 0:
		return "accept"
	case 2:
		return "drop"
	case 7:
		return "redirect"
	}
	return fmt.Sprintf("verdict %d", v)
}

// ParseVerdict checks a verdict filter.
func ParseVerdict(s string) error {
	switch s {
	case "", "drop", "redirect", "accept", "next":
		return nil
	}
	return fmt.Errorf("%w: verdict %q: want drop, redirect, accept or next", errdefs.ErrInvalid, s)
}

// hooksFor maps a trace direction to hooks. On a service veth "in" is traffic
// into the service (the veth's egress hook) and "out" traffic leaving it (its
// ingress hook); on a host interface "in" is the ingress hook (packets it
// receives) and "out" the egress hook.
func hooksFor(direction string, service bool) ([]module.Hook, error) {
	switch direction {
	case "":
		return module.Hooks, nil
	case "in":
		if service {
			return []module.Hook{module.HookEgress}, nil
		}
		return []module.Hook{module.HookIngress}, nil
	case "out":
		if service {
			return []module.Hook{module.HookIngress}, nil
		}
		return []module.Hook{module.HookEgress}, nil
	}
	return nil, fmt.Errorf("%w: direction %q: want in or out", errdefs.ErrInvalid, direction)
}

// traceTarget is one program a trace attaches to.
type traceTarget struct {
	key      targetKey
	program  *ebpf.Program
	instance string
	module   string
	mod      module.Module
	priority int
}

type targetKey struct {
	instance string
	hook     module.Hook
	prog     uint32
}

// traceIface is an interface a trace follows.
type traceIface struct {
	name    string
	service string // "name/instance" on a service veth
	last    map[module.Hook]uint32
}

// traceView is what a trace knows of the chains, read under mu.
type traceView struct {
	targets []traceTarget
	ifaces  map[int]traceIface
}

// traceView selects the running instances' programs on the interfaces and
// hooks o names; the caller holds mu. A service or interface with no
// instance attached is ErrNotFound.
func (m *Manager) traceView(o TraceOptions) (traceView, error) {
	v := traceView{ifaces: map[int]traceIface{}}
	found := o.Service == "" && o.Iface == ""
	seen := map[targetKey]bool{}
	for _, in := range m.sorted() {
		for _, a := range in.sortedAtts() {
			svc := a.iface.Service
			if o.Iface != "" && a.iface.Name != o.Iface || o.Service != "" && (svc == nil || svc.Name != o.Service) {
				continue
			}
			found = true
			if in.state != StateRunning {
				continue
			}
			hooks, err := hooksFor(o.Direction, svc != nil)
			if err != nil {
				return v, err
			}
			ti := v.ifaces[a.iface.Ifindex]
			if ti.name == "" {
				ti = traceIface{name: a.iface.Name, last: map[module.Hook]uint32{}}
				if svc != nil {
					ti.service = fmt.Sprintf("%s/%d", svc.Name, svc.Instance)
				}
			}
			for _, h := range hooks {
				id, ok := in.dp.ProgramID(h)
				if _, att := a.links[h]; !ok || !att {
					continue
				}
				ti.last[h] = id // sorted: the last of ours in chain order
				k := targetKey{in.id, h, id}
				if seen[k] {
					continue
				}
				seen[k] = true
				v.targets = append(v.targets, traceTarget{key: k, program: in.dp.SDK().Programs[h.Program()],
					instance: in.id, module: in.name, mod: in.mod, priority: in.rank.priority})
			}
			v.ifaces[a.iface.Ifindex] = ti
		}
	}
	if !found {
		what := "interface " + o.Iface
		if o.Service != "" {
			what = "service " + o.Service
		}
		return v, fmt.Errorf("%w: no module instance is attached to %s", errdefs.ErrNotFound, what)
	}
	return v, nil
}

func (m *Manager) tracer() Tracer {
	if m.opts.Tracer != nil {
		return m.opts.Tracer
	}
	return kernelTracer{}
}

// errTracingRefused wraps a kernel's refusal of tracing programs as a 422.
func errTracingRefused(err error) error { return fmt.Errorf("%w: %w", errdefs.ErrUnprocessable, err) }

// Trace follows the packets o selects through the chains and calls emit with
// each packet's path, until ctx is done, o.Count paths were emitted or
// o.Duration is over. It attaches tracing programs to the chain's programs
// for that time only, follows the chains as they change (resyncing every
// traceResync), and detaches everything when it returns. Several traces may
// run at once: each has its own programs and maps.
func (m *Manager) Trace(ctx context.Context, o TraceOptions, emit func(PacketPath) error) (err error) {
	if err := ParseVerdict(o.Verdict); err != nil {
		return err
	}
	if o.Drops {
		return m.monitorDrops(ctx, o, emit)
	}
	if err := m.tracer().Supported(); errors.Is(err, trace.ErrUnsupported) {
		return errTracingRefused(err) // before anything is created or attached
	}
	m.mu.Lock()
	v, err := m.traceView(o)
	m.mu.Unlock()
	if err != nil {
		return err
	}
	f := trace.Filter{Proto: o.Proto, Host: o.Host, Port: o.Port, DropsOnly: o.Drops}
	if o.Rate > 0 {
		f.Rate, f.Burst = perCPURate(o.Rate, ebpfPossibleCPUs())
	}
	if o.Service != "" || o.Iface != "" {
		for i := range v.ifaces {
			f.Ifindexes = append(f.Ifindexes, i)
		}
	}
	s, err := m.tracer().Start(f)
	if errors.Is(err, trace.ErrUnsupported) {
		return errTracingRefused(err)
	}
	if err != nil {
		return fmt.Errorf("%w: start the tracer: %v", errdefs.ErrUnprocessable, err)
	}
	defer s.Close()
	t := &tracing{m: m, o: o, s: s, emit: emit, cookies: map[targetKey]uint64{}, g: newGrouper()}
	if err := t.sync(v); err != nil {
		return fmt.Errorf("%w: attach the tracer: %v", errdefs.ErrUnprocessable, err)
	}
	if o.Started != nil {
		o.Started()
	}
	return t.run(ctx)
}

// perCPURate splits a node-wide event rate over the CPUs (at least 1 per
// second each) with a bucket of one second's worth.
func perCPURate(rate uint64, cpus int) (per, burst uint64) {
	if cpus < 1 {
		cpus = 1
	}
	per = rate / uint64(cpus)
	if per == 0 {
		per = 1
	}
	return per, per
}

func ebpfPossibleCPUs() int {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return 1
	}
	return n
}
