package trace

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
)

// ErrClosed is returned by Read after Close.
var ErrClosed = errors.New("trace session closed")

// SetTargets attaches to the targets not yet attached and detaches from those
// no longer listed; a target is known by its cookie (a program replaced in
// place needs a new one). A target that cannot be attached is an error; what was
// attached before stays.
func (s *Session) SetTargets(ts []Target) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	want := map[uint64]Target{}
	for _, t := range ts {
		want[t.Cookie] = t
	}
	for k, a := range s.att {
		if _, ok := want[k]; !ok {
			a.close()
			delete(s.att, k)
		}
	}
	for k, t := range want {
		if _, ok := s.att[k]; ok {
			continue
		}
		a, err := s.attach(t)
		if err != nil {
			return err
		}
		s.att[k] = a
	}
	return nil
}

// Attached is how many targets are attached.
func (s *Session) Attached() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.att)
}

// attach loads the fentry and fexit programs for one target (the attach
// target is fixed at load) on the session's maps, and attaches them.
func (s *Session) attach(t Target) (_ *attached, err error) {
	spec := s.spec.Copy()
	for _, p := range spec.Programs {
		p.AttachTarget = t.Program
		p.AttachTo = t.Func
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: s.maps})
	if err != nil {
		return nil, fmt.Errorf("load the tracer for %s: %w", t.Func, err)
	}
	a := &attached{coll: coll}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	for name, at := range map[string]ebpf.AttachType{"nm_trace_entry": ebpf.AttachTraceFEntry, "nm_trace_exit": ebpf.AttachTraceFExit} {
		l, err := link.AttachTracing(link.TracingOptions{Program: coll.Programs[name], AttachType: at, Cookie: t.Cookie})
		if err != nil {
			return nil, fmt.Errorf("attach %s to %s: %w", name, t.Func, err)
		}
		a.links = append(a.links, l)
	}
	return a, nil
}

// Read returns the next event; after deadline (zero: none) it returns an
// error satisfying errors.Is(err, os.ErrDeadlineExceeded).
func (s *Session) Read(deadline time.Time) (Event, error) {
	s.rd.SetDeadline(deadline)
	rec, err := s.rd.Read()
	if errors.Is(err, ringbuf.ErrClosed) {
		return Event{}, ErrClosed
	}
	if err != nil {
		return Event{}, err
	}
	var r rawEvent
	if err := binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, &r); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	return s.decode(r), nil
}

func (s *Session) decode(r rawEvent) Event {
	e := Event{Time: s.boot.Add(time.Duration(r.Ktime)), Cookie: r.Cookie, Verdict: r.Verdict, CPU: r.CPU,
		Reason: r.Reason, Detail: r.Detail, Skb: r.Skb, Ifindex: int(r.Ifindex), Len: r.Len, Proto: r.Proto,
		Sport: binary.BigEndian.Uint16(r.Sport[:]), Dport: binary.BigEndian.Uint16(r.Dport[:])}
	switch r.Family {
	case 4:
		e.Src = netip.AddrFrom4([4]byte(r.Saddr[:4]))
		e.Dst = netip.AddrFrom4([4]byte(r.Daddr[:4]))
	case 6:
		e.Src, e.Dst = netip.AddrFrom16(r.Saddr), netip.AddrFrom16(r.Daddr)
	}
	return e
}

// Lost is how many events the rate limit or a full ring buffer refused.
func (s *Session) Lost() (uint64, error) {
	var per []uint64
	if err := s.maps["nm_trace_lost"].Lookup(uint32(0), &per); err != nil {
		return 0, fmt.Errorf("lost events: %w", err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

// Close detaches every target and frees the maps; Read returns ErrClosed.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for k, a := range s.att {
		a.close()
		delete(s.att, k)
	}
	if s.rd != nil {
		_ = s.rd.Close()
	}
	for _, m := range s.maps {
		m.Close()
	}
	return nil
}
