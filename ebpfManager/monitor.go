package ebpfmanager

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/ebpfManager/trace"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// DropSession is the drop monitor running (trace.DropSession): its program
// on the kfree_skb tracepoint.
type DropSession interface {
	Own(instances []uint32, ifaces map[int]uint8) error
	Read(deadline time.Time) (trace.Drop, error)
	Lost() (uint64, error)
	Close() error
}

// num is the instance's numeric id, the nm_instance its data plane is
// loaded with (bpf/reasons.h); 0 if the id is not a number.
func (in *instance) num() uint32 {
	n, err := strconv.ParseUint(in.id, 10, 32)
	if err != nil {
		return 0
	}
	return uint32(n)
}

// dropView is what the drop monitor knows of the chains, read under mu.
type dropView struct {
	instances map[uint32]traceTarget // by nm_instance
	ifaces    map[int]traceIface
}

// dropView selects the interfaces o names (ErrNotFound as for a trace) and
// names every instance; the caller holds mu.
func (m *Manager) dropView(o TraceOptions) (dropView, error) {
	tv, err := m.traceView(TraceOptions{Service: o.Service, Iface: o.Iface})
	if err != nil {
		return dropView{}, err
	}
	v := dropView{instances: map[uint32]traceTarget{}, ifaces: tv.ifaces}
	for _, in := range m.sorted() {
		v.instances[in.num()] = traceTarget{instance: in.id, module: in.name, mod: in.mod, priority: in.rank.priority}
	}
	return v, nil
}

// hookMask is the trace.DropFilter mask of the hooks a direction selects.
func hookMask(direction string, service bool) (uint8, error) {
	hs, err := hooksFor(direction, service)
	if err != nil {
		return 0, err
	}
	var mask uint8
	for _, h := range hs {
		if h == module.HookIngress {
			mask |= 1 << trace.HookIngress
		} else {
			mask |= 1 << trace.HookEgress
		}
	}
	return mask, nil
}

// dropFilter is the kernel's filter for o on the interfaces selected: with a
// service or interface only those; with a direction only its hook on each
// (a service veth's "in" is its egress hook; an interface the manager does
// not know is taken as a host interface). A drop whose hook the kernel does
// not tell (neither TC_INGRESS nor TC_EGRESS) passes no direction filter.
//
// Only our drops are reported (Ours): those our instances marked, and the
// unattributed ones on our interfaces.
func dropFilter(o TraceOptions, v dropView, cpus int) (trace.DropFilter, error) {
	f := trace.DropFilter{Proto: o.Proto, Host: o.Host, Port: o.Port, Only: o.Service != "" || o.Iface != "",
		HooksFiltered: o.Direction != "", Ours: true, Instances: v.nums()}
	if o.Rate > 0 {
		f.Rate, f.Burst = perCPURate(o.Rate, cpus)
	}
	var err error
	if f.OtherHooks, err = hookMask(o.Direction, false); err != nil {
		return f, err
	}
	f.Ifaces, err = ifaceMasks(o.Direction, v.ifaces)
	return f, err
}

// ifaceMasks are the hooks a direction follows on each interface.
func ifaceMasks(direction string, ifaces map[int]traceIface) (map[int]uint8, error) {
	out := make(map[int]uint8, len(ifaces))
	for i, ti := range ifaces {
		m, err := hookMask(direction, ti.service != "")
		if err != nil {
			return nil, err
		}
		out[i] = m
	}
	return out, nil
}

// nums are the view's instances by nm_instance, sorted.
func (v dropView) nums() []uint32 {
	out := make([]uint32, 0, len(v.instances))
	for n := range v.instances {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// monitorDrops is Trace for o.Drops: the drop monitor on the kfree_skb
// tracepoint, which needs no BPF trampoline (so no Supported check).
func (m *Manager) monitorDrops(ctx context.Context, o TraceOptions, emit func(PacketPath) error) error {
	m.mu.Lock()
	v, err := m.dropView(o)
	m.mu.Unlock()
	if err != nil {
		return err
	}
	f, err := dropFilter(o, v, ebpfPossibleCPUs())
	if err != nil {
		return err
	}
	s, err := m.tracer().StartDrops(f)
	if err != nil {
		return fmt.Errorf("%w: start the drop monitor: %v", errdefs.ErrUnprocessable, err)
	}
	defer s.Close()
	if o.Started != nil {
		o.Started()
	}
	mo := &monitoring{m: m, o: o, s: s, emit: emit, v: v, names: map[int]string{}}
	return mo.run(ctx)
}

// monitoring is one running drop monitor.
type monitoring struct {
	m     *Manager
	o     TraceOptions
	s     DropSession
	emit  func(PacketPath) error
	v     dropView
	names map[int]string // interfaces the manager does not know, by ifindex
	sent  int
	lost  uint64
}

func (mo *monitoring) run(ctx context.Context) error {
	got := func(d trace.Drop) error {
		if err := mo.emit(dropPath(d, mo.v, mo.ifname)); err != nil {
			return err
		}
		if mo.sent++; mo.o.Count > 0 && mo.sent >= mo.o.Count {
			return errTraceDone
		}
		return nil
	}
	resync := func() error { mo.resync(); return nil }
	if err := readLoop(ctx, mo.o.Duration, mo.s.Read, got, mo.suppressed, resync); err != nil {
		return err
	}
	if mo.o.Count > 0 && mo.sent >= mo.o.Count {
		return nil
	}
	if ctx.Err() == nil {
		if err := mo.drain(); err != nil {
			return err
		}
	}
	return mo.suppressed()
}

// drain emits the drops still in the ring buffer at the end (the kernel
// does not wake the reader per drop: up to a poll's worth is queued).
func (mo *monitoring) drain() error {
	for mo.o.Count == 0 || mo.sent < mo.o.Count {
		d, err := mo.s.Read(time.Now())
		if err != nil {
			return nil // empty (deadline exceeded) or closed
		}
		if err := mo.emit(dropPath(d, mo.v, mo.ifname)); err != nil {
			return err
		}
		mo.sent++
	}
	return nil
}

// resync learns the instances and interfaces added since; what it knew is
// kept, for drops still queued.
func (mo *monitoring) resync() {
	mo.m.mu.Lock()
	v, err := mo.m.dropView(TraceOptions{})
	mo.m.mu.Unlock()
	if err != nil {
		return
	}
	var nums []uint32
	for k, t := range v.instances {
		if _, ok := mo.v.instances[k]; !ok {
			nums = append(nums, k)
		}
		mo.v.instances[k] = t
	}
	added := map[int]traceIface{}
	for k, ti := range v.ifaces {
		if _, ok := mo.v.ifaces[k]; !ok {
			mo.v.ifaces[k] = ti
			added[k] = ti
		}
	}
	if mo.o.Service != "" || mo.o.Iface != "" {
		added = nil // the filter's interfaces are fixed at the start
	}
	masks, err := ifaceMasks(mo.o.Direction, added)
	if err == nil {
		err = mo.s.Own(nums, masks)
	}
	if err != nil {
		mo.m.opts.Log.WithError(err).Warn("drop monitor: cannot follow new instances and interfaces")
	}
}

// suppressed emits a notice of the drops the kernel did not report.
func (mo *monitoring) suppressed() error {
	return emitSuppressed(mo.s, &mo.lost, mo.emit)
}

// ifname names an interface the manager does not know (cached).
func (mo *monitoring) ifname(i int) string {
	if n, ok := mo.names[i]; ok {
		return n
	}
	n := ""
	if ifc, err := net.InterfaceByIndex(i); err == nil {
		n = ifc.Name
	}
	mo.names[i] = n
	return n
}

// dropPath is one drop as a path of one hop: the instance nm_drop named, or
// (instance 0 or unknown) an unattributed chain drop, reason "unspecified".
// The hook is the one the kernel's drop reason tells; without it the
// direction is "unknown".
func dropPath(d trace.Drop, v dropView, ifname func(int) string) PacketPath {
	ti := v.ifaces[d.Ifindex]
	if ti.name == "" {
		ti.name = ifname(d.Ifindex)
	}
	p := PacketPath{Time: d.Time, Interface: ti.name, Ifindex: d.Ifindex, Service: ti.service, Direction: "unknown",
		Sport: d.Sport, Dport: d.Dport, Len: d.Len}
	if h, ok := map[trace.Hook]module.Hook{trace.HookIngress: module.HookIngress, trace.HookEgress: module.HookEgress}[d.Hook]; ok {
		in := h == module.HookIngress
		if ti.service != "" {
			in = !in
		}
		p.Hook, p.Direction = h.String(), "out"
		if in {
			p.Direction = "in"
		}
	}
	if d.Src.IsValid() {
		p.Src, p.Dst, p.Proto = d.Src.String(), d.Dst.String(), protoName(d.Proto)
	}
	hop := Hop{Verdict: "drop", Reason: dropReasonName(nil, 0)}
	if tt, ok := v.instances[d.Instance]; ok && d.Instance != 0 {
		hop = newHop(trace.Event{Verdict: 2, Reason: d.Reason, Detail: d.Detail}, tt)
	}
	p.Hops = []Hop{hop}
	return p
}
