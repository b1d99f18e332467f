package config

import (
	"fmt"
	"net/netip"
)

// Adopt returns the network with the node subnet a cluster gave: address
// (and addressV6) is its first address, ClusterBits (ClusterBitsV6) its
// length, the bridge gateway the next address. IPv6 stays as it is: off
// when it was off, whatever the cluster sends; on, it needs the cluster's
// IPv6 subnet. NodeIP stays. The error names what in the cluster's answer
// is unusable.
func (n Network) Adopt(address, addressV6 string) (Network, error) {
	v4, err := clusterPrefix("address", address, n.ClusterBits, true)
	if err != nil {
		return n, err
	}
	var v6 netip.Prefix
	if n.NodeSubnetV6.IsValid() {
		if addressV6 == "" {
			return n, fmt.Errorf("addressv6: empty, and IPv6 is on on this node")
		}
		if v6, err = clusterPrefix("addressv6", addressV6, n.ClusterBitsV6, false); err != nil {
			return n, err
		}
	}
	return n.WithSubnets(v4, v6)
}

// WithSubnets returns the network with another node subnet (and IPv6
// subnet, ignored when IPv6 is off) and their gateways, refusing subnets
// that overlap the service ranges, are too small, or leave IPv6 on without
// an IPv6 subnet.
func (n Network) WithSubnets(v4, v6 netip.Prefix) (Network, error) {
	if !v4.Addr().Is4() || v4.Masked() != v4 || v4.Bits() > 30 {
		return n, fmt.Errorf("node subnet %s: not an IPv4 subnet of at least 4 addresses", v4)
	}
	if v4.Overlaps(n.ServiceRange) {
		return n, fmt.Errorf("node subnet %s overlaps the service range %s", v4, n.ServiceRange)
	}
	out := n
	out.NodeSubnet, out.Gateway = v4, v4.Addr().Next()
	if !n.NodeSubnetV6.IsValid() {
		return out, nil
	}
	if !v6.IsValid() || v6.Addr().Is4() || v6.Masked() != v6 || hostBits(v6) < hostBits(v4) {
		return n, fmt.Errorf("node subnet %s: IPv6 is on and %q is not an IPv6 subnet with an address for every IPv4 one", v4, v6)
	}
	if n.ServiceRangeV6.IsValid() && v6.Overlaps(n.ServiceRangeV6) {
		return n, fmt.Errorf("node subnet %s overlaps the service range %s", v6, n.ServiceRangeV6)
	}
	out.NodeSubnetV6, out.GatewayV6 = v6, v6.Addr().Next()
	return out, nil
}

// clusterPrefix is the subnet of bits starting at s.
func clusterPrefix(key, s string, bits int, v4 bool) (netip.Prefix, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s %q: %w", key, s, err)
	}
	if a.Is4() != v4 || a.Zone() != "" {
		fam := "IPv6"
		if v4 {
			fam = "IPv4"
		}
		return netip.Prefix{}, fmt.Errorf("%s %q: not an %s address", key, s, fam)
	}
	p := netip.PrefixFrom(a, bits)
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%s %s: not the first address of a /%d", key, s, bits)
	}
	return p, nil
}
