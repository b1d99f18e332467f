package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/events"
)

// LinkOptions configures a Link.
type LinkOptions struct {
	// Services lists the instances deployed on the node, to report them
	// when the link comes up and again after a reconnect.
	Services func() []events.Service
	// Node is the node's address and tunnel port, the host_ip and
	// host_port other nodes reach its instances at.
	Node netip.AddrPort
	// Client is what Connect gets; ClientID and Broker come from Register.
	Client Options
	// OnRegistered runs (in its own goroutine) once the node is registered
	// and after each reconnect, with the jobs of the node's instances.
	OnRegistered func(jobs []string)
	Log          logrus.FieldLogger
}

// Link is the node's membership in its cluster: it connects at
// registration, reports every instance the node deploys, and reports them
// all again after a reconnect.
type Link struct {
	o      LinkOptions
	mu     sync.Mutex
	c      *Client
	subnet SubnetResult
	// nodeMu guards node, the node's address and tunnel port now
	// (LinkOptions.Node at first, SetNode's since).
	nodeMu sync.Mutex
	node   netip.AddrPort
}

// NewLink returns a Link that is not connected yet.
func NewLink(o LinkOptions) *Link {
	if o.Log == nil {
		o.Log = logrus.StandardLogger()
	}
	return &Link{o: o, node: o.Node}
}

// Registered is what a registration with the cluster found out.
type Registered struct {
	Broker string
	Subnet SubnetResult // the cluster's answer
	// NodeSubnet and NodeSubnetV6 are the node subnets in use afterwards,
	// set by whoever moves the node to the cluster's (not the Link).
	NodeSubnet, NodeSubnetV6 netip.Prefix
}

// Register connects to the cluster's broker at addr as clientID, asks for
// the node subnet and reports the node's instances. It fails, leaving no
// connection, when the broker or the cluster does not answer.
func (l *Link) Register(ctx context.Context, clientID, addr string) (Registered, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		return Registered{Broker: l.o.Client.Broker, Subnet: l.subnet}, nil
	}
	o := l.o.Client
	o.ClientID, o.Broker, o.Log = clientID, addr, l.o.Log
	o.OnReconnect = l.republish
	c, err := Connect(ctx, o)
	if err != nil {
		return Registered{}, err
	}
	sn, err := c.Subnet(ctx)
	if err != nil {
		c.Close()
		return Registered{}, fmt.Errorf("%w: cluster %s: %v", errdefs.ErrUnavailable, addr, err)
	}
	l.c, l.subnet, l.o.Client = c, sn, o
	if err := l.reportAll(c); err != nil {
		l.o.Log.WithError(err).Warn("cluster: report the node's instances at registration")
	}
	l.registered()
	return Registered{Broker: addr, Subnet: sn}, nil
}

// HandleEvent reports a new instance to the cluster (an events.Bus handler).
func (l *Link) HandleEvent(_ context.Context, ev events.Event) error {
	l.mu.Lock()
	c := l.c
	l.mu.Unlock()
	if c == nil || ev.Type != events.ServiceCreated {
		return nil
	}
	if err := c.Deployed(l.deployed(ev.Service)); err != nil {
		// The instance runs; the cluster learns of it on the next reconnect.
		l.o.Log.WithError(err).WithField("service", ev.Service.ServiceName).Warn("cluster: report a deployed instance")
	}
	return nil
}

// republish reports every instance again (after a reconnect).
func (l *Link) republish() {
	l.mu.Lock()
	c := l.c
	l.mu.Unlock()
	if c == nil {
		return
	}
	if err := l.reportAll(c); err != nil {
		l.o.Log.WithError(err).Warn("cluster: report the node's instances after a reconnect")
		return
	}
	l.registered()
}

// reportAll tells the cluster of every instance on the node; it stops at
// the first failure (the connection is gone: the next reconnect reports
// them again).
func (l *Link) reportAll(c *Client) error {
	for _, s := range l.o.Services() {
		if err := c.Deployed(l.deployed(s)); err != nil {
			return fmt.Errorf("report %s instance %d: %w", s.ServiceName, s.Instance, err)
		}
	}
	return nil
}

// registered hands the jobs of the node's instances to OnRegistered.
func (l *Link) registered() {
	if l.o.OnRegistered == nil {
		return
	}
	seen := map[string]bool{}
	var jobs []string
	for _, s := range l.o.Services() {
		if !seen[s.ServiceName] {
			seen[s.ServiceName] = true
			jobs = append(jobs, s.ServiceName)
		}
	}
	go l.o.OnRegistered(jobs)
}

// deployed is the service/deployed message for an instance.
func (l *Link) deployed(s events.Service) Deployed {
	node := l.Node()
	d := Deployed{AppName: s.ServiceName, Status: "DEPLOYED", InstanceNumber: s.Instance, NsIP: s.IPv4.String(),
		HostIP: node.Addr().String(), HostPort: strconv.Itoa(int(node.Port()))}
	if s.IPv6.IsValid() {
		d.NsIPv6 = s.IPv6.String()
	}
	return d
}

// ClientID is the id the node registered as ("" before Register).
func (l *Link) ClientID() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c == nil {
		return ""
	}
	return l.o.Client.ClientID
}

// Client returns the connection, nil before Register.
func (l *Link) Client() *Client {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c
}

// Close disconnects.
func (l *Link) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		l.c.Close()
		l.c = nil
	}
}
