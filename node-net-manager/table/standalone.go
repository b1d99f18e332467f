package table

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"sync"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/ipam"
)

// Instance is what the NetManager knows of a newly deployed instance.
type Instance struct {
	ServiceName string
	Instance    int
	NsIP        netip.Addr
	NsIPv6      netip.Addr
}

// Node is this node's identity as other nodes reach it.
type Node struct {
	IP   netip.Addr
	Port int
}

type service struct {
	rr        netip.Addr
	instances map[int]*Entry
}

// Standalone is the embedded service table used when no cluster is attached: it
// allocates a round-robin service IP per service name and an instance IP per
// instance from one range, and answers lookups from what was deployed on this node.
type Standalone struct {
	mu       sync.RWMutex
	node     Node
	pool     *ipam.Pool
	services map[string]*service
	byIP     map[netip.Addr]func() []Entry
}

// NewStandalone returns an empty table allocating from serviceRange.
func NewStandalone(serviceRange netip.Prefix, node Node) (*Standalone, error) {
	pool, err := ipam.NewPool(serviceRange)
	if err != nil {
		return nil, fmt.Errorf("service range: %w", err)
	}
	return &Standalone{node: node, pool: pool, services: map[string]*service{}, byIP: map[netip.Addr]func() []Entry{}}, nil
}

// Add records an instance and allocates its service IPs; the first instance of a
// service also gets the service's round-robin IP, which later instances share.
func (s *Standalone) Add(in Instance) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.services[in.ServiceName]
	if svc != nil && svc.instances[in.Instance] != nil {
		return Entry{}, fmt.Errorf("%w: instance %d of %s is already in the table", errdefs.ErrConflict, in.Instance, in.ServiceName)
	}
	var fresh []netip.Addr
	undo := func() {
		for _, a := range fresh {
			s.pool.Release(a)
		}
	}
	if svc == nil {
		rr, err := s.pool.Allocate()
		if err != nil {
			return Entry{}, fmt.Errorf("allocate service IP for %s: %w", in.ServiceName, err)
		}
		fresh = append(fresh, rr)
		svc = &service{rr: rr, instances: map[int]*Entry{}}
	}
	instIP, err := s.pool.Allocate()
	if err != nil {
		undo()
		return Entry{}, fmt.Errorf("allocate instance IP for %s/%d: %w", in.ServiceName, in.Instance, err)
	}
	e := &Entry{
		ServiceName: in.ServiceName, Instance: in.Instance, NsIP: in.NsIP, NsIPv6: in.NsIPv6,
		NodeIP: s.node.IP, NodePort: s.node.Port,
		ServiceIPs: []ServiceIP{{Policy: PolicyRoundRobin, Address: svc.rr}, {Policy: PolicyInstance, Address: instIP}},
	}
	if len(svc.instances) == 0 {
		s.services[in.ServiceName] = svc
		name := in.ServiceName
		s.byIP[svc.rr] = func() []Entry { return s.serviceEntries(name) }
	}
	svc.instances[in.Instance] = e
	one := func() []Entry { return []Entry{e.clone()} }
	s.byIP[instIP] = one
	s.byIP[in.NsIP] = one
	if in.NsIPv6.IsValid() {
		s.byIP[in.NsIPv6] = one
	}
	return e.clone(), nil
}

// Restore records an instance with the service IPs it had before a restart,
// claiming them again; the round-robin IP must agree with the service's.
func (s *Standalone) Restore(in Instance, ips []ServiceIP) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rr, inst netip.Addr
	for _, ip := range ips {
		switch ip.Policy {
		case PolicyRoundRobin:
			rr = ip.Address
		case PolicyInstance:
			inst = ip.Address
		}
	}
	if !rr.IsValid() || !inst.IsValid() {
		return Entry{}, fmt.Errorf("%w: restore %s/%d: round-robin and instance IP are required", errdefs.ErrInvalid, in.ServiceName, in.Instance)
	}
	svc := s.services[in.ServiceName]
	if svc != nil && (svc.instances[in.Instance] != nil || svc.rr != rr) {
		return Entry{}, fmt.Errorf("%w: restore %s/%d: clashes with the table", errdefs.ErrConflict, in.ServiceName, in.Instance)
	}
	if err := s.pool.Claim(inst); err != nil {
		return Entry{}, fmt.Errorf("restore %s/%d: %w", in.ServiceName, in.Instance, err)
	}
	if svc == nil {
		if err := s.pool.Claim(rr); err != nil {
			s.pool.Release(inst)
			return Entry{}, fmt.Errorf("restore %s/%d: %w", in.ServiceName, in.Instance, err)
		}
		svc = &service{rr: rr, instances: map[int]*Entry{}}
		s.services[in.ServiceName] = svc
		name := in.ServiceName
		s.byIP[rr] = func() []Entry { return s.serviceEntries(name) }
	}
	e := &Entry{ServiceName: in.ServiceName, Instance: in.Instance, NsIP: in.NsIP, NsIPv6: in.NsIPv6, NodeIP: s.node.IP, NodePort: s.node.Port,
		ServiceIPs: []ServiceIP{{Policy: PolicyRoundRobin, Address: rr}, {Policy: PolicyInstance, Address: inst}}}
	svc.instances[in.Instance] = e
	one := func() []Entry { return []Entry{e.clone()} }
	s.byIP[inst] = one
	s.byIP[in.NsIP] = one
	if in.NsIPv6.IsValid() {
		s.byIP[in.NsIPv6] = one
	}
	return e.clone(), nil
}

// Remove forgets an instance and frees its instance IP; the service's round-robin
// IP is freed with its last instance.
func (s *Standalone) Remove(serviceName string, instance int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.services[serviceName]
	if svc == nil || svc.instances[instance] == nil {
		return fmt.Errorf("%w: instance %d of %s is not in the table", errdefs.ErrNotFound, instance, serviceName)
	}
	e := svc.instances[instance]
	delete(svc.instances, instance)
	if ip, ok := e.ServiceIP(PolicyInstance); ok {
		delete(s.byIP, ip)
		s.pool.Release(ip)
	}
	delete(s.byIP, e.NsIP)
	if e.NsIPv6.IsValid() {
		delete(s.byIP, e.NsIPv6)
	}
	if len(svc.instances) == 0 {
		delete(s.services, serviceName)
		delete(s.byIP, svc.rr)
		s.pool.Release(svc.rr)
	}
	return nil
}

// Lookup answers a query from the local table; an unknown name or address is
// an empty answer, not an error.
func (s *Standalone) Lookup(_ context.Context, q Query) ([]Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case q.ServiceName != "" && q.IP.IsValid():
		return nil, fmt.Errorf("%w: query by service name or by IP, not both", errdefs.ErrInvalid)
	case q.ServiceName != "":
		return s.serviceEntries(q.ServiceName), nil
	case q.IP.IsValid():
		if f := s.byIP[q.IP]; f != nil {
			return f(), nil
		}
		return nil, nil
	default:
		return nil, fmt.Errorf("%w: empty query", errdefs.ErrInvalid)
	}
}

// Entries returns every entry, ordered by service name and instance number.
func (s *Standalone) Entries() []Entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Entry
	for name := range s.services {
		out = append(out, s.serviceEntries(name)...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ServiceName != out[j].ServiceName {
			return out[i].ServiceName < out[j].ServiceName
		}
		return out[i].Instance < out[j].Instance
	})
	return out
}

// serviceEntries returns copies of one service's entries by instance number; the caller holds the lock.
func (s *Standalone) serviceEntries(name string) []Entry {
	svc := s.services[name]
	if svc == nil {
		return nil
	}
	out := make([]Entry, 0, len(svc.instances))
	for _, e := range svc.instances {
		out = append(out, e.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out
}
