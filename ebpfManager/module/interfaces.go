package module

import (
	"sort"
	"sync"
)

// DirectionName names a hook as the APIs show it: from the service's point of
// view on a service veth ("ingress" is traffic going to the service, which is
// the veth's TC egress hook), and as the hook itself on a host interface.
func (i Interface) DirectionName(h Hook) string {
	if i.Service != nil {
		return h.ServiceDirection()
	}
	return h.String()
}

// Interfaces records where a control plane's programs run, by ifindex: what
// most modules keep from Attach and Detach to name their per-interface state.
// The zero value is ready; it is safe for concurrent use.
type Interfaces struct {
	mu sync.Mutex
	m  map[uint32]Interface
}

// Add records an attachment's interface.
func (s *Interfaces) Add(a Attachment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[uint32]Interface{}
	}
	s.m[uint32(a.Interface.Ifindex)] = a.Interface
}

// Remove forgets an attachment's interface.
func (s *Interfaces) Remove(a Attachment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, uint32(a.Interface.Ifindex))
}

// List returns the recorded interfaces ordered by ifindex.
func (s *Interfaces) List() []Interface {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Interface, 0, len(s.m))
	for _, i := range s.m {
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Ifindex < out[b].Ifindex })
	return out
}
