package main

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/config"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
)

type subnetServices struct{ n config.Network }

func (f *subnetServices) Subnet() config.Network { return f.n }
func (f *subnetServices) Renumber(n config.Network) error {
	f.n = n
	return nil
}
func (f *subnetServices) RemoveStale(context.Context) (int, *deploy.Record, error) {
	return 0, nil, nil
}

// The cluster table's node subnets follow the node's moves.
func TestTrackedSubnets(t *testing.T) {
	p := netip.MustParsePrefix
	s := trackSubnets(&subnetServices{n: config.Network{NodeSubnet: p("10.19.0.0/24")}})
	if got := s.Prefixes(); !slices.Equal(got, []netip.Prefix{p("10.19.0.0/24")}) {
		t.Fatalf("at start: %v", got)
	}
	if err := s.Renumber(config.Network{NodeSubnet: p("10.18.1.0/26"), NodeSubnetV6: p("fc00::/120")}); err != nil {
		t.Fatal(err)
	}
	if got := s.Prefixes(); !slices.Equal(got, []netip.Prefix{p("10.18.1.0/26"), p("fc00::/120")}) {
		t.Fatalf("after a move: %v", got)
	}
}
