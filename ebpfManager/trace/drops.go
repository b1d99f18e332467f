package trace

import (
	"bytes"
	_ "embed"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

//go:generate clang -O2 -g -Wall -Werror -target bpf -I/usr/include/x86_64-linux-gnu -c bpf/drops.bpf.c -o bpf/drops.o

// dropsObject is drops.bpf.c compiled (go generate); TestObjectUpToDate
// checks it.
//
//go:embed bpf/drops.o
var dropsObject []byte

// Hook is where a drop happened, as the kernel's drop reason tells.
type Hook uint8

// Hooks, as drops.bpf.c has them.
const (
	HookUnknown Hook = 0 // a drop reason other than TC_INGRESS/TC_EGRESS (or a test run)
	HookIngress Hook = 1 // SKB_DROP_REASON_TC_INGRESS
	HookEgress  Hook = 2 // SKB_DROP_REASON_TC_EGRESS
)

// dHook and dOurs are the drop monitor's own filter flags (drops.bpf.c's
// F_HOOK and F_OURS; the others are common.go's).
const (
	dHook = 1 << 5
	dOurs = 1 << 6
)

// DropFilter selects the drops the kernel reports. The zero value reports
// every chain drop, unlimited.
type DropFilter struct {
	// Ifaces maps the interfaces followed to the hooks followed there (a
	// mask of 1<<Hook; 0 follows every hook). With Only, drops elsewhere
	// are not reported; without, the other interfaces follow OtherHooks.
	Ifaces map[int]uint8
	Only   bool
	// HooksFiltered turns the hook masks on (a direction was asked for);
	// OtherHooks is the mask of an interface not in Ifaces.
	HooksFiltered bool
	OtherHooks    uint8
	Proto         uint8      // IP protocol (0: any)
	Host          netip.Addr // source or destination (invalid: any)
	Port          uint16     // source or destination port (0: any)
	// Rate limits the events per second, per CPU (a token bucket of Burst
	// events); 0 is unlimited. Refused events are counted (Lost).
	Rate, Burst uint64
	// Ours reports only the drops nm_drop marked with one of Instances, and
	// the unattributed ones on an interface of Ifaces: the tracepoint sees
	// every drop of the host, those of data planes another process loaded
	// included. It is checked before the rate limit, so those take none of
	// it. Own adds instances and interfaces while the monitor runs.
	Ours      bool
	Instances []uint32
}

// Drop is one dropped packet.
type Drop struct {
	Time time.Time
	CPU  uint32
	// Instance is the dropping program's nm_instance (bpf/reasons.h), 0 for
	// a TC drop without nm_drop's mark (unattributed).
	Instance       uint32
	Reason, Detail uint32 // nm_drop's (0: none)
	Hook           Hook
	Ifindex        int
	Len            uint32
	Proto          uint8
	Src, Dst       netip.Addr // invalid for a packet that is not IP
	Sport, Dport   uint16
}

// rawDrop is struct event of drops.bpf.c.
type rawDrop struct {
	Ktime                         uint64
	CPU, Instance, Reason, Detail uint32
	Ifindex, Len                  uint32
	Hook, Pad                     uint8
	Flow                          rawFlow
}

// DropSession is the drop monitor running: its program on the kfree_skb
// tracepoint, its maps and the ring buffer's reader. Close detaches it.
type DropSession struct {
	coll *ebpf.Collection
	link link.Link
	ev   *events
}

// StartDrops loads the drop monitor with f and attaches it to the kfree_skb
// tracepoint (a raw tracepoint: no BPF trampoline, so it works where
// Supported refuses fentry/fexit).
func StartDrops(f DropFilter) (_ *DropSession, err error) {
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(dropsObject))
	if err != nil {
		return nil, fmt.Errorf("read the drop monitor's object: %w", err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("load the drop monitor: %w", err)
	}
	s := &DropSession{coll: coll}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.configure(f); err != nil {
		return nil, err
	}
	if s.ev, err = newEvents(coll.Maps["nm_drop_events"]); err != nil {
		return nil, err
	}
	if s.link, err = link.AttachTracing(link.TracingOptions{Program: coll.Programs["nm_drop_monitor"]}); err != nil {
		return nil, fmt.Errorf("attach the drop monitor to kfree_skb: %w", err)
	}
	return s, nil
}

func (s *DropSession) configure(f DropFilter) error {
	c := config{Hooks: f.OtherHooks, Rate: f.Rate, Burst: f.Burst}
	c.setPacket(f.Proto, f.Host, f.Port)
	if err := s.Own(nil, f.Ifaces); err != nil {
		return err
	}
	if f.Only {
		c.Flags |= fIfindex
	}
	if f.Ours {
		c.Flags |= dOurs
		if err := s.Own(f.Instances, nil); err != nil {
			return err
		}
	}
	if f.HooksFiltered {
		c.Flags |= dHook
	}
	if err := s.coll.Maps["nm_drop_config"].Put(uint32(0), c); err != nil {
		return fmt.Errorf("filter: %w", err)
	}
	return nil
}

// Own adds instances, and interfaces with the hooks followed there
// (ifindex -> mask, 0: every hook), to those whose drops are reported.
func (s *DropSession) Own(instances []uint32, ifaces map[int]uint8) error {
	for _, in := range instances {
		if err := s.coll.Maps["nm_drop_instances"].Put(in, uint8(1)); err != nil {
			return fmt.Errorf("own instance %d: %w", in, err)
		}
	}
	for i, mask := range ifaces {
		if mask == 0 {
			mask = 0xff
		}
		if err := s.coll.Maps["nm_drop_ifs"].Put(uint32(i), mask); err != nil {
			return fmt.Errorf("filter ifindex %d: %w", i, err)
		}
	}
	return nil
}

// Read returns the next drop; after deadline (zero: none) it returns an
// error satisfying errors.Is(err, os.ErrDeadlineExceeded).
func (s *DropSession) Read(deadline time.Time) (Drop, error) {
	var r rawDrop
	if err := s.ev.read(deadline, "drop", &r); err != nil {
		return Drop{}, err
	}
	d := Drop{Time: s.ev.time(r.Ktime), CPU: r.CPU, Instance: r.Instance, Reason: r.Reason, Detail: r.Detail,
		Hook: Hook(r.Hook), Ifindex: int(r.Ifindex), Len: r.Len, Proto: r.Flow.Proto}
	d.Src, d.Dst, d.Sport, d.Dport = r.Flow.addrs()
	return d, nil
}

// Lost is how many drops the rate limit or a full ring buffer refused.
func (s *DropSession) Lost() (uint64, error) {
	n, err := sumLost(s.coll.Maps["nm_drop_lost"])
	if err != nil {
		return 0, fmt.Errorf("lost drops: %w", err)
	}
	return n, nil
}

// Close detaches the monitor and frees its maps; Read returns ErrClosed.
func (s *DropSession) Close() error {
	if s.link != nil {
		_ = s.link.Close()
		s.link = nil
	}
	s.ev.close()
	if s.coll != nil {
		s.coll.Close()
		s.coll = nil
	}
	return nil
}
