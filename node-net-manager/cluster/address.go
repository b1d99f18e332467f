package cluster

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
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
// from now on carries it. Once the node is registered, the connection to
// the broker is made anew (its socket may be bound to the address the node
// lost; the reconnect reports every instance again), and each instance on
// the node is reported at the new address over service/address-changed,
// as the reference does, so the cluster updates its host_ip and tells the
// nodes that follow its job. When the broker cannot be reached, the link
// tries again in the background until it can, then reports.
func (l *Link) SetNode(node netip.AddrPort) error {
	l.nodeMu.Lock()
	changed := l.node != node
	l.node = node
	l.nodeMu.Unlock()
	c := l.Client()
	if !changed || c == nil {
		return nil
	}
	if err := c.Reconnect(); err != nil {
		go l.reconnectLater(c, node)
		return fmt.Errorf("reconnect to the broker from %s (trying again): %w", node.Addr(), err)
	}
	return l.reportMoved(c, node)
}

// reportMoved sends service/address-changed for every instance on the node.
func (l *Link) reportMoved(c *Client, node netip.AddrPort) error {
	var errs []error
	for _, s := range l.o.Services() {
		if err := c.AddressChanged(l.addressChanged(s)); err != nil {
			errs = append(errs, fmt.Errorf("report %s instance %d at %s: %w", s.ServiceName, s.Instance, node, err))
		}
	}
	return errors.Join(errs...)
}

// reconnectLater tries to reconnect every few seconds (doubling up to 10 s)
// until it can, then reports the instances at node; it gives up when the
// link closed, was registered anew or the node moved again.
func (l *Link) reconnectLater(c *Client, node netip.AddrPort) {
	wait := time.Second
	for {
		time.Sleep(wait)
		if l.Client() != c || l.Node() != node {
			return
		}
		err := c.Reconnect()
		if err == nil {
			err = l.reportMoved(c, node)
			if err != nil {
				l.o.Log.WithError(err).Warn("cluster: report the instances at the node's new address")
			}
			return
		}
		l.o.Log.WithError(err).Debug("cluster: reconnect after the node's address changed")
		wait = min(2*wait, 10*time.Second)
	}
}

// addressChanged is the service/address-changed message for an instance:
// service/deployed's, with the status and namespace addresses empty, as the
// reference sends it.
func (l *Link) addressChanged(s events.Service) Deployed {
	d := l.deployed(s)
	d.Status, d.NsIP, d.NsIPv6 = "", "", ""
	return d
}

// Reconnect drops the connection to the broker and connects again (from
// the node's current address), subscribing to every topic anew; the
// owner's OnReconnect runs as after any reconnect.
func (c *Client) Reconnect() error {
	c.mq.Disconnect(250) // returns once the old connection is down (or after 250 ms)
	tok := c.mq.Connect()
	if !tok.WaitTimeout(c.o.ConnectTimeout) {
		c.mq.Disconnect(0)
		return fmt.Errorf("%w: cluster broker %s: no answer within %v", errdefs.ErrUnavailable, c.o.Broker, c.o.ConnectTimeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("%w: cluster broker %s: %v", errdefs.ErrUnavailable, c.o.Broker, err)
	}
	return nil
}

// AddressChanged tells the cluster an instance is reached at a new node
// address (host_ip, host_port).
func (c *Client) AddressChanged(d Deployed) error { return c.publish(topicAddressChanged, d) }
