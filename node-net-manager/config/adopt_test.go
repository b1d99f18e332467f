package config

import (
	"strings"
	"testing"
)

func TestAdopt(t *testing.T) {
	base, err := Default().Validate()
	if err != nil {
		t.Fatal(err)
	}
	v4only := Default()
	v4only.NodeSubnetV6 = ""
	off, err := v4only.Validate()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		n            Network
		addr, addr6  string
		subnet, gw   string
		subnet6, gw6 string
		err          string
	}{
		{name: "oakestra's sizes", n: base, addr: "10.18.0.64", addr6: "fd00:18::100", subnet: "10.18.0.64/26", gw: "10.18.0.65", subnet6: "fd00:18::100/120", gw6: "fd00:18::101"},
		{name: "IPv6 off ignores the cluster's", n: off, addr: "10.19.3.0", addr6: "fd00:19::", subnet: "10.19.3.0/26", gw: "10.19.3.1"},
		{name: "IPv6 off, none sent", n: off, addr: "10.19.3.0", subnet: "10.19.3.0/26", gw: "10.19.3.1"},
		{name: "not aligned", n: base, addr: "10.18.0.65", addr6: "fd00:18::", err: "not the first address of a /26"},
		{name: "garbage", n: base, addr: "ten", addr6: "fd00:18::", err: `address "ten"`},
		{name: "IPv6 for IPv4", n: base, addr: "fd00::", addr6: "fd00:18::", err: "not an IPv4 address"},
		{name: "IPv4 for IPv6", n: base, addr: "10.18.0.0", addr6: "10.1.0.0", err: "addressv6 \"10.1.0.0\": not an IPv6 address"},
		{name: "no IPv6 while on", n: base, addr: "10.18.0.0", err: "addressv6: empty"},
		{name: "in the service range", n: base, addr: "10.30.1.0", addr6: "fd00:18::", err: "10.30.1.0/26 overlaps the service range 10.30.0.0/16"},
		{name: "in the IPv6 service range", n: base, addr: "10.18.1.0", addr6: "fdff:2000::", err: "fdff:2000::/120 overlaps the service range fdff::/16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.n.Adopt(tc.addr, tc.addr6)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one containing %q", err, tc.err)
				}
				if got != tc.n {
					t.Fatalf("a refused subnet changed the network: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.NodeSubnet.String() != tc.subnet || got.Gateway.String() != tc.gw {
				t.Fatalf("IPv4 %s gw %s, want %s gw %s", got.NodeSubnet, got.Gateway, tc.subnet, tc.gw)
			}
			if tc.subnet6 == "" {
				if got.NodeSubnetV6.IsValid() {
					t.Fatalf("IPv6 turned on: %s", got.NodeSubnetV6)
				}
			} else if got.NodeSubnetV6.String() != tc.subnet6 || got.GatewayV6.String() != tc.gw6 {
				t.Fatalf("IPv6 %s gw %s, want %s gw %s", got.NodeSubnetV6, got.GatewayV6, tc.subnet6, tc.gw6)
			}
			if got.NodeIP != tc.n.NodeIP || got.ServiceRange != tc.n.ServiceRange || got.Bridge != tc.n.Bridge {
				t.Fatalf("adopting changed more than the subnet: %+v", got)
			}
		})
	}
}
