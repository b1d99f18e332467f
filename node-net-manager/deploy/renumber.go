package deploy

import (
	"fmt"

	"github.com/oakestra/netmanager/node-net-manager/config"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/ipam"
)

// Subnet is the node subnet instances are addressed in now.
func (m *Manager) Subnet() config.Network {
	m.ops.Lock()
	defer m.ops.Unlock()
	return m.opts.Net
}

// Renumber moves the node to the subnet of n (the cluster's), which only an
// empty node can do: with an instance deployed it is ErrConflict and
// nothing changes. Deploys wait for it.
func (m *Manager) Renumber(n config.Network) error {
	m.ops.Lock()
	defer m.ops.Unlock()
	if n.NodeSubnet == m.opts.Net.NodeSubnet && n.NodeSubnetV6 == m.opts.Net.NodeSubnetV6 {
		return nil
	}
	m.mu.RLock()
	deployed := len(m.recs)
	m.mu.RUnlock()
	if deployed > 0 {
		return fmt.Errorf("%w: %d instances are deployed in %s", errdefs.ErrConflict, deployed, m.opts.Net.NodeSubnet)
	}
	pool, err := ipam.NewPool(n.NodeSubnet, n.Gateway)
	if err != nil {
		return fmt.Errorf("node subnet %s: %w", n.NodeSubnet, err)
	}
	if err := m.opts.Env.Renumber(n); err != nil {
		return err
	}
	m.pool, m.opts.Net = pool, n
	m.opts.Log.WithField("subnet", n.NodeSubnet.String()).Info("the node moved to another subnet")
	return nil
}
