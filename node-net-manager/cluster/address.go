package cluster

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/oakestra/netmanager/node-net-manager/events"
)

// Node is the node's address and tunnel port, the host_ip and host_port
// the link reports.
func (l *Link) Node() netip.AddrPort {
	l.nodeMu.Lock()
	defer l.nodeMu.Unlock()
	return l.node
}

// SetNode moves the node's address (it changed under way): every report
// from now on carries it, and, once the node is registered, each instance
// on the node is reported at it over service/address-changed, as the
// reference does, so the cluster updates its host_ip and tells the nodes
// that follow its job. A report that fails is in the error; after a
// reconnect the link reports every instance again at the new address.
func (l *Link) SetNode(node netip.AddrPort) error {
	l.nodeMu.Lock()
	changed := l.node != node
	l.node = node
	l.nodeMu.Unlock()
	c := l.Client()
	if !changed || c == nil {
		return nil
	}
	var errs []error
	for _, s := range l.o.Services() {
		if err := c.AddressChanged(l.addressChanged(s)); err != nil {
			errs = append(errs, fmt.Errorf("report %s instance %d at %s: %w", s.ServiceName, s.Instance, node, err))
		}
	}
	return errors.Join(errs...)
}

// addressChanged is the service/address-changed message for an instance:
// service/deployed's, with the status and namespace addresses empty, as the
// reference sends it.
func (l *Link) addressChanged(s events.Service) Deployed {
	d := l.deployed(s)
	d.Status, d.NsIP, d.NsIPv6 = "", "", ""
	return d
}

// AddressChanged tells the cluster an instance is reached at a new node
// address (host_ip, host_port).
func (c *Client) AddressChanged(d Deployed) error { return c.publish(topicAddressChanged, d) }
