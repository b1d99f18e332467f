package trace

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
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
	var r rawEvent
	if err := s.ev.read(deadline, "event", &r); err != nil {
		return Event{}, err
	}
	return s.decode(r), nil
}

func (s *Session) decode(r rawEvent) Event {
	e := Event{Time: s.ev.time(r.Ktime), Cookie: r.Cookie, Verdict: r.Verdict, CPU: r.CPU, Reason: r.Reason,
		Detail: r.Detail, Skb: r.Skb, Ifindex: int(r.Ifindex), Len: r.Len, Proto: r.Flow.Proto}
	e.Src, e.Dst, e.Sport, e.Dport = r.Flow.addrs()
	return e
}

// Lost is how many events the rate limit or a full ring buffer refused.
func (s *Session) Lost() (uint64, error) {
	n, err := sumLost(s.maps["nm_trace_lost"])
	if err != nil {
		return 0, fmt.Errorf("lost events: %w", err)
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
	s.ev.close()
	for _, m := range s.maps {
		m.Close()
	}
	return nil
}
