package cluster

import (
	"fmt"
	"net/netip"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

// What the node accepts from the cluster: a table answer that breaks any of
// these rules is rejected whole (the job's cached entries stay), counted by
// reason (Table.Rejected) and logged.
const (
	// MaxInstances is the most instances one answer may list.
	MaxInstances = 4096
	// MaxServiceIPs is the most service IP entries one instance may have.
	MaxServiceIPs = 16
	// MaxNameLen bounds app_name and query_key.
	MaxNameLen = 256
	// MaxAddrLen bounds every address string (and IpType).
	MaxAddrLen = 64
)

// The reasons an answer is rejected for, the reason label of
// netmanager_cluster_answers_rejected_total.
const (
	// ReasonJob: app_name is not a service name, or not the job asked about.
	ReasonJob = "job"
	// ReasonSize: too many instances or service IPs, or a string too long.
	ReasonSize = "size"
	// ReasonAddress: an address that does not parse, has a zone, or is of
	// the wrong family for its field.
	ReasonAddress = "address"
	// ReasonServiceIP: a service IP outside the node's service ranges.
	ReasonServiceIP = "service_ip"
	// ReasonNamespaceIP: a namespace IP inside the service ranges, or not a
	// unicast address.
	ReasonNamespaceIP = "namespace_ip"
	// ReasonHost: host_ip is not a unicast address, or host_port is not
	// 1-65535.
	ReasonHost = "host"
	// ReasonSubnet: an instance on another node claims an address of this
	// node's own subnets.
	ReasonSubnet = "subnet"
)

// Reasons lists every reason, in the order they are checked for.
var Reasons = []string{ReasonJob, ReasonSize, ReasonAddress, ReasonServiceIP, ReasonNamespaceIP, ReasonHost, ReasonSubnet}

// AnswerError is a rejected answer: why (one of Reasons) and what in it.
// It wraps errdefs.ErrInvalid.
type AnswerError struct {
	Reason string
	Detail string
}

func (e *AnswerError) Error() string {
	return fmt.Sprintf("the cluster's answer is rejected (%s): %s", e.Reason, e.Detail)
}

func (e *AnswerError) Unwrap() error { return errdefs.ErrInvalid }

func reject(reason, format string, args ...any) *AnswerError {
	return &AnswerError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// View is what the node knows to judge an answer by.
type View struct {
	// Ranges are the service ranges (serviceRange, serviceRangeV6): every
	// service IP is inside one, no namespace IP is. A service IP of a family
	// with no range here (IPv6 off) is left out of the entry.
	Ranges []netip.Prefix
	// Subnets are this node's node subnets: no instance on another node
	// has a namespace IP inside them (checked only when Self is known).
	Subnets []netip.Prefix
	// Self is this node's tunnel address (invalid: unknown); an instance
	// with host_ip:host_port equal to it is on this node.
	Self netip.AddrPort
	// Runs, when set, says whether this node runs an instance of job with
	// namespace IP ns; an instance the cluster places on this node that it
	// does not run is left out of the entries (not a rejection: it is what
	// the cluster still says of an instance removed here a moment ago, or
	// before the node restarted).
	Runs func(job string, ns netip.Addr) bool
}

// CheckAnswer judges a table answer about job asked (a name query; "" for
// a query by IP, which may name any job) and converts it into entries. An
// instance not deployed yet (namespace_ip or host_ip empty) is left out, as
// is one Runs denies (counted in leftOut); any other fault rejects the
// whole answer with an *AnswerError. An answer naming no job has no entries.
func CheckAnswer(r TableResult, asked string, v View) (es []table.Entry, leftOut int, err error) {
	if len(r.AppName) > MaxNameLen || len(r.QueryKey) > MaxNameLen {
		return nil, 0, reject(ReasonSize, "app_name or query_key longer than %d bytes", MaxNameLen)
	}
	if r.AppName == "" {
		return nil, 0, nil
	}
	if err := table.ValidateServiceName(r.AppName); err != nil {
		return nil, 0, reject(ReasonJob, "app_name: %v", err)
	}
	if asked != "" && r.AppName != asked {
		return nil, 0, reject(ReasonJob, "app_name %q answers a query about %q", r.AppName, asked)
	}
	if len(r.InstanceList) > MaxInstances {
		return nil, 0, reject(ReasonSize, "%d instances, more than %d", len(r.InstanceList), MaxInstances)
	}
	es = make([]table.Entry, 0, len(r.InstanceList))
	for i, in := range r.InstanceList {
		e, ok, err := checkInstance(r.AppName, in, v)
		if err != nil {
			err.Detail = fmt.Sprintf("%s instance %d (entry %d): %s", r.AppName, in.InstanceNumber, i, err.Detail)
			return nil, 0, err
		}
		if !ok {
			continue
		}
		if v.Runs != nil && v.Self.IsValid() && netip.AddrPortFrom(e.NodeIP, uint16(e.NodePort)) == v.Self && !v.Runs(r.AppName, e.NsIP) {
			leftOut++
			continue
		}
		es = append(es, e)
	}
	return es, leftOut, nil
}

// checkInstance judges one instance and converts it; ok is false for an
// instance not deployed yet.
func checkInstance(job string, in Instance, v View) (e table.Entry, ok bool, err *AnswerError) {
	if len(in.ServiceIP) > MaxServiceIPs {
		return e, false, reject(ReasonSize, "%d service IPs, more than %d", len(in.ServiceIP), MaxServiceIPs)
	}
	for _, s := range []string{in.NamespaceIP, in.NamespaceIPv6, in.HostIP} {
		if len(s) > MaxAddrLen {
			return e, false, reject(ReasonSize, "an address longer than %d bytes", MaxAddrLen)
		}
	}
	if in.NamespaceIP == "" || in.HostIP == "" {
		return e, false, nil
	}
	e = table.Entry{ServiceName: job, Instance: in.InstanceNumber, NodePort: in.HostPort}
	if e.NodeIP, err = parseAddr("host_ip", in.HostIP, 0); err != nil {
		return e, false, err
	}
	if !unicast(e.NodeIP) {
		return e, false, reject(ReasonHost, "host_ip %s is not a unicast address", e.NodeIP)
	}
	if in.HostPort < 1 || in.HostPort > 65535 {
		return e, false, reject(ReasonHost, "host_port %d is not 1-65535", in.HostPort)
	}
	if e.NsIP, err = parseAddr("namespace_ip", in.NamespaceIP, 4); err != nil {
		return e, false, err
	}
	if in.NamespaceIPv6 != "" {
		if e.NsIPv6, err = parseAddr("namespace_ip_v6", in.NamespaceIPv6, 6); err != nil {
			return e, false, err
		}
	}
	if err := checkNamespace(e, v); err != nil {
		return e, false, err
	}
	if e.ServiceIPs, err = serviceIPs(in.ServiceIP, v.Ranges); err != nil {
		return e, false, err
	}
	return e, true, nil
}

// checkNamespace judges an instance's namespace IPs: unicast, outside the
// service ranges, and, on another node, outside this node's subnets.
func checkNamespace(e table.Entry, v View) *AnswerError {
	other := v.Self.IsValid() && netip.AddrPortFrom(e.NodeIP, uint16(e.NodePort)) != v.Self
	for _, ip := range []netip.Addr{e.NsIP, e.NsIPv6} {
		if !ip.IsValid() {
			continue
		}
		if !unicast(ip) {
			return reject(ReasonNamespaceIP, "namespace IP %s is not a unicast address", ip)
		}
		if in(v.Ranges, ip) {
			return reject(ReasonNamespaceIP, "namespace IP %s is inside the service ranges", ip)
		}
		if other && in(v.Subnets, ip) {
			return reject(ReasonSubnet, "namespace IP %s on node %s is inside this node's subnets", ip, netip.AddrPortFrom(e.NodeIP, uint16(e.NodePort)))
		}
	}
	return nil
}

// serviceIPs converts an instance's service IPs: each inside a service
// range of its family, a family without a range (IPv6 off) left out.
func serviceIPs(list []ServiceIP, ranges []netip.Prefix) ([]table.ServiceIP, *AnswerError) {
	var out []table.ServiceIP
	for _, s := range list {
		if len(s.IPType) > MaxAddrLen || len(s.Address) > MaxAddrLen || len(s.AddressV6) > MaxAddrLen {
			return nil, reject(ReasonSize, "a service IP or IpType longer than %d bytes", MaxAddrLen)
		}
		p, ok := policies[s.IPType]
		if !ok {
			p = table.PolicyInstance // as the reference: anything else names one instance
		}
		for _, f := range []struct {
			field, s string
			family   int
		}{{"Address", s.Address, 4}, {"Address_v6", s.AddressV6, 6}} {
			if f.s == "" {
				continue
			}
			ip, err := parseAddr(f.field, f.s, f.family)
			if err != nil {
				return nil, err
			}
			if !hasFamily(ranges, ip) {
				continue
			}
			if !in(ranges, ip) {
				return nil, reject(ReasonServiceIP, "service IP %s is outside the service ranges %v", ip, ranges)
			}
			out = append(out, table.ServiceIP{Policy: p, Address: ip})
		}
	}
	return out, nil
}

// parseAddr parses an address of a field: no zone, no IPv4-mapped IPv6,
// and of family 4 or 6 (0: either).
func parseAddr(field, s string, family int) (netip.Addr, *AnswerError) {
	ip, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return ip, reject(ReasonAddress, "%s %q is not an IP address", field, s)
	case ip.Zone() != "" || ip.Is4In6():
		return ip, reject(ReasonAddress, "%s %q is not a plain IPv4 or IPv6 address", field, s)
	case family == 4 && !ip.Is4(), family == 6 && !ip.Is6():
		return ip, reject(ReasonAddress, "%s %q is not an IPv%d address", field, s, family)
	}
	return ip, nil
}

var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// unicast says whether ip can be one host's address.
func unicast(ip netip.Addr) bool {
	return ip.IsValid() && !ip.IsLoopback() && !ip.IsMulticast() && !ip.IsUnspecified() && ip != broadcast
}

func in(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func hasFamily(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.IsValid() && p.Addr().Is4() == ip.Is4() {
			return true
		}
	}
	return false
}
