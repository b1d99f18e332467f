package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/config"
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
