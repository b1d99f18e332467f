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
	rr        []netip.Addr // round-robin IP per pool: IPv4, then IPv6 if on
	instances map[int]*Entry
}

// Options configure a Standalone table.
type Options struct {
	Range   netip.Prefix // IPv4 service and instance IPs
	RangeV6 netip.Prefix // IPv6 service and instance IPs; invalid: none
	Node    Node
}

// Standalone is the embedded service table used when no cluster is attached: it
// allocates a round-robin service IP per service name and an instance IP per
// instance from one range per address family, and answers lookups from what
// was deployed on this node.
type Standalone struct {
	mu       sync.RWMutex
	node     Node
	pools    []*ipam.Pool // IPv4, then IPv6 if on
	services map[string]*service
	byIP     map[netip.Addr]func() []Entry
}

// NewStandalone returns an empty table.
func NewStandalone(o Options) (*Standalone, error) {
	s := &Standalone{node: o.Node, services: map[string]*service{}, byIP: map[netip.Addr]func() []Entry{}}
	for _, r := range []struct {
		name   string
		prefix netip.Prefix
		v4     bool
	}{{"service range", o.Range, true}, {"IPv6 service range", o.RangeV6, false}} {
		if !r.v4 && !r.prefix.IsValid() {
			break
		}
		if r.prefix.Addr().Is4() != r.v4 {
			return nil, fmt.Errorf("%s %s: wrong address family", r.name, r.prefix)
		}
		pool, err := ipam.NewPool(r.prefix)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.name, err)
		}
		s.pools = append(s.pools, pool)
	}
	return s, nil
}

// claims records addresses taken from the pools so a failure can give them back.
type claims struct {
	pools []*ipam.Pool
	taken []claimed
}

type claimed struct {
	pool int
	addr netip.Addr
}

func (c *claims) allocate(i int) (netip.Addr, error) {
	a, err := c.pools[i].Allocate()
	if err == nil {
		c.taken = append(c.taken, claimed{i, a})
	}
	return a, err
}

func (c *claims) claim(i int, a netip.Addr) error {
	err := c.pools[i].Claim(a)
	if err == nil {
		c.taken = append(c.taken, claimed{i, a})
	}
	return err
}

func (c *claims) undo() {
	for _, t := range c.taken {
		c.pools[t.pool].Release(t.addr)
	}
}

// Add records an instance and allocates its service IPs; the first instance of a
// service also gets the service's round-robin IPs, which later instances share.
func (s *Standalone) Add(in Instance) (_ Entry, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.services[in.ServiceName]
	if svc != nil && svc.instances[in.Instance] != nil {
		return Entry{}, fmt.Errorf("%w: instance %d of %s is already in the table", errdefs.ErrConflict, in.Instance, in.ServiceName)
	}
	c := &claims{pools: s.pools}
	defer func() {
		if err != nil {
			c.undo()
		}
	}()
	if svc == nil {
		svc = &service{rr: make([]netip.Addr, len(s.pools)), instances: map[int]*Entry{}}
		for i := range s.pools {
			if svc.rr[i], err = c.allocate(i); err != nil {
				return Entry{}, fmt.Errorf("allocate service IP for %s: %w", in.ServiceName, err)
			}
		}
	}
	inst := make([]netip.Addr, len(s.pools))
	for i := range s.pools {
		if inst[i], err = c.allocate(i); err != nil {
			return Entry{}, fmt.Errorf("allocate instance IP for %s/%d: %w", in.ServiceName, in.Instance, err)
		}
	}
	return s.insert(svc, in, inst), nil
}

// Restore records an instance with the service IPs it had before a restart,
// claiming them again; the round-robin IPs must agree with the service's. An
// address family the table allocates but the record lacks (IPv6 turned on
// since) gets fresh addresses; one it no longer allocates is dropped.
func (s *Standalone) Restore(in Instance, ips []ServiceIP) (_ Entry, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rr, inst := make([]netip.Addr, len(s.pools)), make([]netip.Addr, len(s.pools))
	for _, ip := range ips {
		i := 0
		if ip.Address.Is6() {
			i = 1
		}
		if i >= len(s.pools) {
			continue
		}
		switch ip.Policy {
		case PolicyRoundRobin:
			rr[i] = ip.Address
		case PolicyInstance:
			inst[i] = ip.Address
		}
	}
	if !rr[0].IsValid() || !inst[0].IsValid() {
		return Entry{}, fmt.Errorf("%w: restore %s/%d: round-robin and instance IP are required", errdefs.ErrInvalid, in.ServiceName, in.Instance)
	}
	svc := s.services[in.ServiceName]
	if svc != nil && (svc.instances[in.Instance] != nil || svc.rr[0] != rr[0]) {
		return Entry{}, fmt.Errorf("%w: restore %s/%d: clashes with the table", errdefs.ErrConflict, in.ServiceName, in.Instance)
	}
	c := &claims{pools: s.pools}
	defer func() {
		if err != nil {
			c.undo()
		}
	}()
	if svc == nil {
		svc = &service{rr: make([]netip.Addr, len(s.pools)), instances: map[int]*Entry{}}
		for i := range s.pools {
			if svc.rr[i], err = s.claimOrAllocate(c, i, rr[i]); err != nil {
				return Entry{}, fmt.Errorf("restore %s/%d: %w", in.ServiceName, in.Instance, err)
			}
		}
	}
	for i := range s.pools {
		if inst[i], err = s.claimOrAllocate(c, i, inst[i]); err != nil {
			return Entry{}, fmt.Errorf("restore %s/%d: %w", in.ServiceName, in.Instance, err)
		}
	}
	return s.insert(svc, in, inst), nil
}

func (s *Standalone) claimOrAllocate(c *claims, pool int, a netip.Addr) (netip.Addr, error) {
	if !a.IsValid() {
		return c.allocate(pool)
	}
	return a, c.claim(pool, a)
}

// insert records an instance of svc with its instance IPs (one per pool) and
// indexes every address; the caller holds the lock.
func (s *Standalone) insert(svc *service, in Instance, inst []netip.Addr) Entry {
	e := &Entry{ServiceName: in.ServiceName, Instance: in.Instance, NsIP: in.NsIP, NsIPv6: in.NsIPv6, NodeIP: s.node.IP, NodePort: s.node.Port}
	for i := range s.pools {
		e.ServiceIPs = append(e.ServiceIPs, ServiceIP{Policy: PolicyRoundRobin, Address: svc.rr[i]}, ServiceIP{Policy: PolicyInstance, Address: inst[i]})
	}
	if len(svc.instances) == 0 {
		s.services[in.ServiceName] = svc
		name := in.ServiceName
		for _, rr := range svc.rr {
			s.byIP[rr] = func() []Entry { return s.serviceEntries(name) }
		}
	}
	svc.instances[in.Instance] = e
	one := func() []Entry { return []Entry{e.clone()} }
	for _, a := range append(inst, in.NsIP, in.NsIPv6) {
		if a.IsValid() {
			s.byIP[a] = one
		}
	}
	return e.clone()
}

// Remove forgets an instance and frees its instance IPs; the service's
// round-robin IPs are freed with its last instance.
func (s *Standalone) Remove(serviceName string, instance int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.services[serviceName]
	if svc == nil || svc.instances[instance] == nil {
		return fmt.Errorf("%w: instance %d of %s is not in the table", errdefs.ErrNotFound, instance, serviceName)
	}
	e := svc.instances[instance]
	delete(svc.instances, instance)
	for _, ip := range e.ServiceIPs {
		if ip.Policy == PolicyInstance {
			delete(s.byIP, ip.Address)
			s.pool(ip.Address).Release(ip.Address)
		}
	}
	delete(s.byIP, e.NsIP)
	if e.NsIPv6.IsValid() {
		delete(s.byIP, e.NsIPv6)
	}
	if len(svc.instances) == 0 {
		delete(s.services, serviceName)
		for _, rr := range svc.rr {
			delete(s.byIP, rr)
			s.pool(rr).Release(rr)
		}
	}
	return nil
}

// pool returns the pool of an address's family.
func (s *Standalone) pool(a netip.Addr) *ipam.Pool {
	if a.Is6() && len(s.pools) > 1 {
		return s.pools[1]
	}
	return s.pools[0]
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
