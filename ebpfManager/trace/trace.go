package trace

import (
	"bytes"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

//go:generate clang -O2 -g -Wall -Werror -target bpf -I/usr/include/x86_64-linux-gnu -c bpf/trace.bpf.c -o bpf/trace.o

// object is trace.bpf.c compiled (go generate); TestObjectUpToDate checks it.
//
//go:embed bpf/trace.o
var object []byte

// Filter flags, as trace.bpf.c has them.
const (
	fIfindex = 1 << 0
	fProto   = 1 << 1
	fHost4   = 1 << 2
	fHost6   = 1 << 3
	fPort    = 1 << 4
	fDrops   = 1 << 5
)

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
	Family, Proto       uint8
	Sport, Dport        [2]byte
	Matched, Rewritten  uint8
	Saddr, Daddr        [16]byte
}

type config struct {
	Flags uint32
	Proto uint8
	Pad   uint8
	Port  [2]byte
	Host  [16]byte
	Rate  uint64
	Burst uint64
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
	rd     *ringbuf.Reader
	boot   time.Time // wall time of ktime 0
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
	if s.rd, err = ringbuf.NewReader(s.maps["nm_trace_events"]); err != nil {
		return nil, fmt.Errorf("ring buffer reader: %w", err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return nil, fmt.Errorf("monotonic clock: %w", err)
	}
	s.boot = time.Now().Add(-time.Duration(ts.Nano()))
	return s, nil
}

func (s *Session) configure(f Filter) error {
	var c config
	for _, i := range f.Ifindexes {
		if err := s.maps["nm_trace_ifs"].Put(uint32(i), uint8(1)); err != nil {
			return fmt.Errorf("filter ifindex %d: %w", i, err)
		}
		c.Flags |= fIfindex
	}
	if f.Proto != 0 {
		c.Flags, c.Proto = c.Flags|fProto, f.Proto
	}
	if f.Host.IsValid() {
		h := f.Host.Unmap()
		if h.Is4() {
			c.Flags |= fHost4
		} else {
			c.Flags |= fHost6
		}
		copy(c.Host[:], h.AsSlice())
	}
	if f.Port != 0 {
		c.Flags |= fPort
		binary.BigEndian.PutUint16(c.Port[:], f.Port)
	}
	if f.DropsOnly {
		c.Flags |= fDrops
	}
	c.Rate, c.Burst = f.Rate, f.Burst
	if err := s.maps["nm_trace_config"].Put(uint32(0), c); err != nil {
		return fmt.Errorf("filter: %w", err)
	}
	return nil
}
