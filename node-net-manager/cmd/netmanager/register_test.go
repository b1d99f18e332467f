package main

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/node-net-manager/config"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

func TestStaysBecause(t *testing.T) {
	cur, err := config.Default().Validate()
	if err != nil {
		t.Fatal(err)
	}
	routed := cur
	routed.NodeIP = netip.MustParseAddr("192.168.77.1")
	for _, tc := range []struct {
		name    string
		cur     config.Network
		to, to6 string
		want    string
	}{
		{"moves", routed, "10.18.7.64", "fd00:18:7::100", ""},
		{"already there", routed, "10.18.0.0", "fd00:18::", sameSubnet},
		{"same IPv4, other IPv6", routed, "10.18.0.0", "fd00:18:7::", ""},
		{"node IP on the bridge", cur, "10.18.7.64", "fd00:18:7::100", "the node IP 10.18.0.1 is the bridge's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cur
			c.ClusterBits, c.ClusterBitsV6 = 24, 64
			if tc.name == "moves" || tc.name == "node IP on the bridge" {
				c.ClusterBits, c.ClusterBitsV6 = 26, 120
			}
			next, err := c.Adopt(tc.to, tc.to6)
			if err != nil {
				t.Fatal(err)
			}
			got := staysBecause(c, next)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("staysBecause = %q, want %q", got, tc.want)
			}
		})
	}
}

// fakeLink is the cluster link: one session at a time, as cluster.Link.
type fakeLink struct {
	id     string // "" when not connected
	subnet cluster.SubnetResult
	calls  []string
}

func (l *fakeLink) Register(_ context.Context, id, addr string) (cluster.Registered, error) {
	l.calls = append(l.calls, "register "+id)
	if l.id == "" {
		l.id = id
	}
	return cluster.Registered{Broker: addr, Subnet: l.subnet}, nil
}

func (l *fakeLink) ClientID() string { return l.id }

func (l *fakeLink) Close() {
	l.calls = append(l.calls, "close "+l.id)
	l.id = ""
}

// fakeServices is the deploy manager: its subnet and what RemoveStale finds.
type fakeServices struct {
	net     config.Network
	removed int
	alive   *deploy.Record
	err     error
}

func (f *fakeServices) Subnet() config.Network { return f.net }

func (f *fakeServices) Renumber(n config.Network) error {
	f.net = n
	return nil
}

func (f *fakeServices) RemoveStale(context.Context) (int, *deploy.Record, error) {
	if f.alive != nil {
		return 0, f.alive, nil
	}
	return f.removed, nil, f.err
}

func newFakeRegistrar(t *testing.T) (*registrar, *fakeLink, *fakeServices) {
	t.Helper()
	n, err := config.Default().Validate()
	if err != nil {
		t.Fatal(err)
	}
	n.NodeIP = netip.MustParseAddr("192.168.77.1")
	n.ClusterBits, n.ClusterBitsV6 = 26, 120
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	l := &fakeLink{subnet: cluster.SubnetResult{Address: "10.18.7.64", AddressV6: "fd00:18:7::100"}}
	svc := &fakeServices{net: n}
	return &registrar{link: l, mgr: svc, log: log}, l, svc
}

// A restarted NodeEngine's registration: the node's stale deployments go,
// the session under the old id ends, the next registration opens one under
// the new id and moves the empty node to the subnet the cluster gives. A
// teardown that left something is no reason to refuse.
func TestRegistrarLeave(t *testing.T) {
	r, l, svc := newFakeRegistrar(t)
	ctx := context.Background()
	if _, err := r.Register(ctx, "A", "192.0.2.10"); err != nil {
		t.Fatal(err)
	}
	svc.removed, svc.err = 2, errors.New("undeploy app.ns.web.ns instance 0: injected")
	removed, err := r.Leave(ctx)
	if err != nil || removed != 2 || r.ClientID() != "" {
		t.Fatalf("Leave = %d, %v; registered as %q", removed, err, r.ClientID())
	}
	l.subnet = cluster.SubnetResult{Address: "10.18.7.128", AddressV6: "fd00:18:7::200"}
	reg, err := r.Register(ctx, "B", "192.0.2.10")
	if err != nil || r.ClientID() != "B" || reg.NodeSubnet.String() != "10.18.7.128/26" || reg.NodeSubnetV6.String() != "fd00:18:7::200/120" {
		t.Fatalf("register as B: %+v %v (as %q)", reg, err, r.ClientID())
	}
	if got := strings.Join(l.calls, ", "); got != "register A, close A, register B" {
		t.Fatalf("link calls: %s", got)
	}
}

// While an instance of the previous NodeEngine runs, Leave is a conflict
// naming it, and the node stays in the cluster under its id.
func TestRegistrarLeaveRefused(t *testing.T) {
	for _, tc := range []struct {
		rec  deploy.Record
		want string
	}{
		{deploy.Record{Kind: deploy.KindContainer, ServiceName: "app.ns.web.ns", Instance: 3, PID: 4242}, "instance 3 of app.ns.web.ns still runs (a container: its process 4242 exists)"},
		{deploy.Record{Kind: deploy.KindUnikernel, ServiceName: "app.ns.uk.ns", Instance: 0, Netns: "/run/netns/app.ns.uk.ns.instance.0"},
			"instance 0 of app.ns.uk.ns still runs (a unikernel: a process is in its namespace /run/netns/app.ns.uk.ns.instance.0)"},
	} {
		r, l, svc := newFakeRegistrar(t)
		ctx := context.Background()
		if _, err := r.Register(ctx, "A", "192.0.2.10"); err != nil {
			t.Fatal(err)
		}
		svc.alive = &tc.rec
		removed, err := r.Leave(ctx)
		if !errors.Is(err, errdefs.ErrConflict) || removed != 0 || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("Leave = %d, %v; want a conflict saying %q", removed, err, tc.want)
		}
		if r.ClientID() != "A" || len(l.calls) != 1 {
			t.Fatalf("the node left the cluster: as %q, link calls %v", r.ClientID(), l.calls)
		}
	}
}

// A node whose service ranges leave out addresses an Oakestra cluster gives
// is refused before it connects, naming both.
func TestRegisterRefusesRangesTheClusterContradicts(t *testing.T) {
	r, l, svc := newFakeRegistrar(t)
	svc.net.ServiceRangeV6 = netip.MustParsePrefix("fdff:2000::/64")
	_, err := r.Register(context.Background(), "A", "192.0.2.10")
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "serviceRangeV6 fdff:2000::/64 does not cover fdff::/20") || len(l.calls) != 0 {
		t.Fatalf("register: %v, link calls %v", err, l.calls)
	}
	svc.net.ServiceRangeV6 = netip.MustParsePrefix("fdff::/16")
	if _, err := r.Register(context.Background(), "A", "192.0.2.10"); err != nil {
		t.Fatal(err)
	}
}
