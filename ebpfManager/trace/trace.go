package trace

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

//go:generate clang -O2 -g -Wall -Werror -target bpf -I/usr/include/x86_64-linux-gnu -c bpf/trace.bpf.c -o bpf/trace.o

// object is trace.bpf.c compiled (go generate); TestObjectUpToDate checks it.
//
//go:embed bpf/trace.o
var object []byte

// fDrops is the tracer's own filter flag (trace.bpf.c's F_DROPS; the
// others are common.go's).
const fDrops = 1 << 5

// Filter selects the hops the kernel emits. The zero value emits every hop,
// unlimited.
type Filter struct {
	Ifindexes []int      // only packets on these interfaces (none: any)
	Proto     uint8      // IP protocol (0: any)
	Host      netip.Addr // source or destination (invalid: any)
	Port      uint16     // source or destination port (0: any)
	DropsOnly bool       // only hops that return TC_ACT_SHOT
	// Rate limits the events per second, per CPU (a token bucket of Burst
	// events); 0 is unlimited. Refused events are counted (Session.Lost).
	Rate, Burst uint64
}

// Target is a program to trace: Func is its BTF function name (nm_ingress,
// nm_egress), Cookie comes back in its events.
type Target struct {
	Program *ebpf.Program
	Func    string
	Cookie  uint64
}

// Event is one hop: a traced program's run on a packet that matched.
type Event struct {
	Time           time.Time
	Cookie         uint64
	Verdict        int32
	CPU            uint32
	Reason, Detail uint32 // nm_drop's, for a drop that gave one
	Skb            uint64 // the packet's sk_buff (groups its hops)
	Ifindex        int
	Len            uint32
	Proto          uint8
	Src, Dst       netip.Addr // invalid for a packet that is not IP
	Sport, Dport   uint16
}

// rawEvent is struct event of trace.bpf.c.
type rawEvent struct {
	Ktime               uint64
	Cookie              uint64
	Verdict             int32
	CPU, Reason, Detail uint32
	Skb                 uint64
	Ifindex, Len        uint32
	Flow                rawFlow
	Matched, Rewritten  uint8
}

// attached is one target's fentry and fexit.
type attached struct {
	coll  *ebpf.Collection
	links []link.Link
}

func (a *attached) close() {
	for _, l := range a.links {
		_ = l.Close()
	}
	a.coll.Close()
}

// Session is one trace: the shared maps, the ring buffer's reader and the
// programs attached to the targets. Close detaches everything.
type Session struct {
	spec   *ebpf.CollectionSpec
	maps   map[string]*ebpf.Map
	ev     *events
	mu     sync.Mutex
	att    map[uint64]*attached // by cookie
	closed bool
}

// Start loads the tracer's maps with f; nothing is attached until SetTargets.
// A kernel that refuses tracing programs (Supported) is refused here, before
// anything is created.
func Start(f Filter) (_ *Session, err error) {
	if err := Supported(); errors.Is(err, ErrUnsupported) {
		return nil, err
	}
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(object))
	if err != nil {
		return nil, fmt.Errorf("read the tracer's object: %w", err)
	}
	s := &Session{spec: spec, maps: map[string]*ebpf.Map{}, att: map[uint64]*attached{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	for name, ms := range spec.Maps {
		m, err := ebpf.NewMap(ms)
		if err != nil {
			return nil, fmt.Errorf("create map %s: %w", name, err)
		}
		s.maps[name] = m
	}
	if err := s.configure(f); err != nil {
		return nil, err
	}
	if s.ev, err = newEvents(s.maps["nm_trace_events"]); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Session) configure(f Filter) error {
	c := config{Rate: f.Rate, Burst: f.Burst}
	c.setPacket(f.Proto, f.Host, f.Port)
	for _, i := range f.Ifindexes {
		if err := s.maps["nm_trace_ifs"].Put(uint32(i), uint8(1)); err != nil {
			return fmt.Errorf("filter ifindex %d: %w", i, err)
		}
		c.Flags |= fIfindex
	}
	if f.DropsOnly {
		c.Flags |= fDrops
	}
	if err := s.maps["nm_trace_config"].Put(uint32(0), c); err != nil {
		return fmt.Errorf("filter: %w", err)
	}
	return nil
}
