package main

import (
	"net/netip"
	"sync/atomic"

	"github.com/oakestra/netmanager/node-net-manager/config"
)

// trackedSubnets is the registrar's view of the deploy.Manager that also
// remembers the node subnets after every Renumber, so the cluster table
// reads them (TableOptions.NodeSubnets) without waiting for a deploy, which
// holds the manager's lock.
type trackedSubnets struct {
	nodeServices
	cur atomic.Pointer[[]netip.Prefix]
}

func trackSubnets(m nodeServices) *trackedSubnets {
	t := &trackedSubnets{nodeServices: m}
	t.remember(m.Subnet())
	return t
}

// Renumber moves the node (deploy.Manager.Renumber) and remembers where it
// is now.
func (t *trackedSubnets) Renumber(n config.Network) error {
	err := t.nodeServices.Renumber(n)
	t.remember(t.nodeServices.Subnet())
	return err
}

func (t *trackedSubnets) remember(n config.Network) {
	ps := []netip.Prefix{n.NodeSubnet}
	if n.NodeSubnetV6.IsValid() {
		ps = append(ps, n.NodeSubnetV6)
	}
	t.cur.Store(&ps)
}

// Prefixes returns the node subnets now.
func (t *trackedSubnets) Prefixes() []netip.Prefix { return *t.cur.Load() }
