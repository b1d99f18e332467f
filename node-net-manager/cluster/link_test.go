package cluster_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/events"
	"github.com/oakestra/netmanager/test/clusterstub"
)

func svc(name string, n int, ip, ip6 string) events.Service {
	s := events.Service{ServiceName: name, Instance: n, IPv4: netip.MustParseAddr(ip)}
	if ip6 != "" {
		s.IPv6 = netip.MustParseAddr(ip6)
	}
	return s
}

// A link reports the node's instances at registration, each new one, and
// all of them again after the broker comes back.
func TestLinkReportsInstances(t *testing.T) {
	addr := freeAddr(t)
	b := clusterstub.StartBroker(t, nil, addr)
	m := clusterstub.NewManager(t, addr, cluster.SubnetResult{Address: "10.18.3.0"})
	running := []events.Service{svc("app.ns.a.ns", 0, "10.18.0.2", "fd00:18::2")}
	l := cluster.NewLink(cluster.LinkOptions{Services: func() []events.Service { return running },
		Node: netip.MustParseAddrPort("192.0.2.10:50103")})
	defer l.Close()
	if id := l.ClientID(); id != "" {
		t.Fatalf("client id before registering: %q", id)
	}
	reg, err := l.Register(ctx(t), "n1", addr)
	if err != nil || reg.Subnet.Address != "10.18.3.0" || reg.Broker != addr || l.ClientID() != "n1" {
		t.Fatalf("register: %+v %v (client id %q)", reg, err, l.ClientID())
	}
	waitFor(t, "the running instance reported", func() bool { return len(m.Messages("service/deployed")) == 1 })
	running = append(running, svc("app.ns.b.ns", 1, "10.18.0.3", ""))
	if err := l.HandleEvent(context.Background(), events.Event{Type: events.ServiceCreated, Service: running[1]}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new instance reported", func() bool { return len(m.Instances("app.ns.b.ns")) == 1 })
	if in := m.Instances("app.ns.b.ns")[0]; in.HostIP != "192.0.2.10" || in.HostPort != 50103 || in.NamespaceIP != "10.18.0.3" || in.NamespaceIPv6 != "" {
		t.Fatalf("as the cluster stored it: %+v", in)
	}
	// The broker restarts empty; the node reports everything again.
	b.Stop()
	clusterstub.StartBroker(t, nil, addr)
	m2 := clusterstub.NewManager(t, addr)
	waitFor(t, "both instances reported again", func() bool {
		return len(m2.Instances("app.ns.a.ns")) == 1 && len(m2.Instances("app.ns.b.ns")) == 1
	})
}

// A cluster whose broker answers but which gives no subnet is a refusal
// that leaves no connection.
func TestLinkNoSubnet(t *testing.T) {
	addr := freeAddr(t)
	clusterstub.StartBroker(t, nil, addr)
	m := clusterstub.NewManager(t, addr) // no subnets to give
	l := cluster.NewLink(cluster.LinkOptions{Services: func() []events.Service { return nil }, Node: netip.MustParseAddrPort("192.0.2.10:50103"),
		Client: cluster.Options{SubnetTimeout: 300 * time.Millisecond}})
	_, err := l.Register(ctx(t), "n1", addr)
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "node subnet") {
		t.Fatalf("register without a subnet: %v", err)
	}
	if l.Client() != nil {
		t.Fatal("a connection is left after the refusal")
	}
	if len(m.Messages("subnet")) != 1 {
		t.Fatalf("subnet requests: %d", len(m.Messages("subnet")))
	}
}
