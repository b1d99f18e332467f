package main

import (
	"context"
	"net/netip"
	"reflect"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

type listOnly struct{ recs []deploy.Record }

func (l listOnly) Deploy(context.Context, deploy.Request) (deploy.Record, error) {
	return deploy.Record{}, nil
}
func (l listOnly) Undeploy(context.Context, deploy.Kind, string, int) error { return nil }
func (l listOnly) List() []deploy.Record                                    { return append([]deploy.Record(nil), l.recs...) }

func sip(p table.Policy, a string) table.ServiceIP {
	return table.ServiceIP{Policy: p, Address: netip.MustParseAddr(a)}
}

// GET /services shows the node's own service IPs standalone, and in
// cluster mode the cluster's for each instance its table has, pending for
// the others: never the node's allocation.
func TestServicesView(t *testing.T) {
	ns := func(a string) netip.Addr { return netip.MustParseAddr(a) }
	local := []table.ServiceIP{sip(table.PolicyRoundRobin, "10.30.0.1"), sip(table.PolicyInstance, "10.30.0.2")}
	recs := []deploy.Record{
		{ServiceName: "a.b.srv.d", Instance: 0, NsAddress: ns("10.18.0.2"), ServiceIPs: local},
		{ServiceName: "a.b.srv.d", Instance: 1, NsAddress: ns("10.18.0.3"), ServiceIPs: local},
		{ServiceName: "a.b.new.d", Instance: 0, NsAddress: ns("10.18.0.4"), ServiceIPs: local},
	}
	theirs := []table.ServiceIP{sip(table.PolicyRoundRobin, "10.30.0.0"), sip(table.PolicyInstance, "10.30.0.3"), sip(table.PolicyRoundRobin, "fdff:2000::"), sip(table.PolicyInstance, "fdff::")}
	cached := map[string][]table.Entry{"a.b.srv.d": {
		{ServiceName: "a.b.srv.d", Instance: 0, NsIP: ns("10.18.0.2"), ServiceIPs: theirs},
		{ServiceName: "a.b.srv.d", Instance: 1, NsIP: ns("10.18.9.3"), ServiceIPs: theirs}, // another deployment of instance 1: stale
	}}
	asked := map[string]int{}
	clustered := false
	v := servicesView{Deployer: listOnly{recs}, clustered: func() bool { return clustered },
		cached: func(job string) []table.Entry { asked[job]++; return cached[job] }}

	for _, r := range v.List() {
		if r.ServiceIPsFrom != deploy.IPsFromNode || !reflect.DeepEqual(r.ServiceIPs, local) {
			t.Fatalf("standalone: %+v", r)
		}
	}
	clustered = true
	got := v.List()
	want := []struct {
		from string
		ips  []table.ServiceIP
	}{{deploy.IPsFromCluster, theirs}, {deploy.IPsPending, nil}, {deploy.IPsPending, nil}}
	for i, w := range want {
		if got[i].ServiceIPsFrom != w.from || !reflect.DeepEqual(got[i].ServiceIPs, w.ips) {
			t.Errorf("cluster mode, %s %d: %s %v, want %s %v", got[i].ServiceName, got[i].Instance, got[i].ServiceIPsFrom, got[i].ServiceIPs, w.from, w.ips)
		}
	}
	if asked["a.b.srv.d"] != 1 || asked["a.b.new.d"] != 1 {
		t.Errorf("the table was asked %v, want once per job", asked)
	}
	if recs[0].ServiceIPsFrom != "" || !reflect.DeepEqual(recs[0].ServiceIPs, local) {
		t.Errorf("the view changed the deployer's records: %+v", recs[0])
	}
}
