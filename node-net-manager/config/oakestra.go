package config

import (
	"fmt"
	"net/netip"
)

// OakestraRange is one range an Oakestra cluster hands addresses out of.
type OakestraRange struct {
	Prefix netip.Prefix
	What   string
}

// OakestraRanges are the service addresses an Oakestra cluster gives (its
// root service manager's allocation, in network/subnetwork_management.py):
// round-robin and instance IPv4 addresses from one pool in 10.30.0.0/16;
// instance IPv6 addresses from fdff::/21, then fdff:800::/21; round-robin
// IPv6 addresses from fdff:2000::/21. (Node subnets come from 10.18.0.0 to
// 10.29.255.192 in /26s and from fc00:: up in /120s, below fdfe::: never in
// these.)
var OakestraRanges = []OakestraRange{
	{netip.MustParsePrefix("10.30.0.0/16"), "round-robin and instance IPv4 addresses"},
	{netip.MustParsePrefix("fdff::/20"), "instance IPv6 addresses (fdff::/21, then fdff:800::/21)"},
	{netip.MustParsePrefix("fdff:2000::/21"), "round-robin IPv6 addresses"},
}

// ClusterConflict says how the node's service ranges contradict what an
// Oakestra cluster hands out (nil when they cover it): a service address
// outside them would not be routed to the proxies, which would not
// translate it either. With IPv6 off there is no IPv6 range to cover.
func (n Network) ClusterConflict() error {
	for _, r := range OakestraRanges {
		key, have := "serviceRange", n.ServiceRange
		if r.Prefix.Addr().Is6() {
			if !n.ServiceRangeV6.IsValid() {
				continue
			}
			key, have = "serviceRangeV6", n.ServiceRangeV6
		}
		if have.Bits() > r.Prefix.Bits() || !have.Contains(r.Prefix.Addr()) {
			return fmt.Errorf("%s %s does not cover %s, where an Oakestra cluster gives %s (the default %s does)", key, have, r.Prefix, r.What, defaultRange(key))
		}
	}
	return nil
}

func defaultRange(key string) string {
	if key == "serviceRange" {
		return Default().ServiceRange
	}
	return Default().ServiceRangeV6
}
