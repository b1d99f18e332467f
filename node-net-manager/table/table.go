package table

import (
	"context"
	"net/netip"
)

// Policy says how a service IP picks an instance.
type Policy string

const (
	// PolicyRoundRobin spreads flows over all instances of the service.
	PolicyRoundRobin Policy = "round_robin"
	// PolicyInstance addresses exactly one instance.
	PolicyInstance Policy = "instance"
	// PolicyClosest picks the instance closest to the sender (cluster mode).
	PolicyClosest Policy = "closest"
)

// ServiceIP is one semantic address and its balancing policy.
type ServiceIP struct {
	Policy  Policy     `json:"policy"`
	Address netip.Addr `json:"address"`
}

// Entry is one instance of a service as the table knows it.
type Entry struct {
	ServiceName string      `json:"serviceName"`
	Instance    int         `json:"instanceNumber"`
	NsIP        netip.Addr  `json:"nsIP"`
	NsIPv6      netip.Addr  `json:"nsIPv6,omitzero"`
	NodeIP      netip.Addr  `json:"nodeIP,omitzero"`
	NodePort    int         `json:"nodePort,omitempty"`
	ServiceIPs  []ServiceIP `json:"serviceIPs"`
}

// ServiceIP returns the entry's IPv4 address for a policy, if it has one.
func (e Entry) ServiceIP(p Policy) (netip.Addr, bool) { return e.ServiceIPOf(p, false) }

// ServiceIPOf returns the entry's address for a policy in one address family.
func (e Entry) ServiceIPOf(p Policy, v6 bool) (netip.Addr, bool) {
	for _, s := range e.ServiceIPs {
		if s.Policy == p && s.Address.Is6() == v6 {
			return s.Address, true
		}
	}
	return netip.Addr{}, false
}

// NsAddr returns the instance's namespace address in one address family
// (invalid when the instance has none).
func (e Entry) NsAddr(v6 bool) netip.Addr {
	if v6 {
		return e.NsIPv6
	}
	return e.NsIP
}

func (e Entry) clone() Entry {
	e.ServiceIPs = append([]ServiceIP(nil), e.ServiceIPs...)
	return e
}

// Query selects entries: by service name, or by an address that is a service IP
// (round robin: every instance; instance IP: that one) or a namespace IP.
// Exactly one of the two fields is set.
type Query struct {
	ServiceName string
	IP          netip.Addr
}

// Querier answers table queries. Implementations are safe for concurrent use.
type Querier interface {
	Lookup(ctx context.Context, q Query) ([]Entry, error)
}
