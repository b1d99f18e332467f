package clusterstub

import (
	"encoding/json"
	"fmt"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
)

// onAddressChanged records an instance's new node address (host_ip,
// host_port), as the cluster service manager does on
// service/address-changed, and tells the nodes that follow its job. The
// instance must be one the node reported.
func (m *Manager) onAddressChanged(node string, b []byte) error {
	var d cluster.Deployed
	if err := json.Unmarshal(b, &d); err != nil {
		return err
	}
	var port int
	if _, err := fmt.Sscan(d.HostPort, &port); err != nil || d.HostIP == "" {
		return fmt.Errorf("host_ip %q or host_port %q", d.HostIP, d.HostPort)
	}
	m.mu.Lock()
	j := m.jobs[d.AppName]
	var in instance
	ok := j != nil
	if ok {
		in, ok = j.instances[d.InstanceNumber]
	}
	if !ok || in.node != node {
		m.mu.Unlock()
		return fmt.Errorf("no instance %d of %s on %s", d.InstanceNumber, d.AppName, node)
	}
	in.HostIP, in.HostPort = d.HostIP, port
	j.instances[d.InstanceNumber] = in
	m.mu.Unlock()
	m.announce(d.AppName, "DEPLOYMENT")
	return nil
}
