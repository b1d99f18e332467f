package config

import (
	"net/netip"
	"strings"
	"testing"
)

// The defaults cover every service address a real Oakestra cluster gives:
// the first few and the last of each of its allocators.
func TestDefaultsCoverOakestra(t *testing.T) {
	n, err := Default().Validate()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.ClusterConflict(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.30.0.0", "10.30.0.1", "10.30.253.252", "fdff::", "fdff::1", "fdff::ffff:ffff:ffff", "fdff:800::", "fdff:2000::", "fdff:2000::1"} {
		ip := netip.MustParseAddr(a)
		covered := false
		for _, r := range n.ServiceRanges() {
			covered = covered || r.Contains(ip)
		}
		if !covered {
			t.Errorf("%s, an address an Oakestra cluster gives, is outside the default service ranges %v", a, n.ServiceRanges())
		}
	}
	// Node subnets a cluster gives are never service addresses.
	for _, a := range []string{"10.18.0.0", "10.29.255.128", "fc00::", "fc00::100", "fdfe:ffff::ff00"} {
		for _, r := range n.ServiceRanges() {
			if r.Contains(netip.MustParseAddr(a)) {
				t.Errorf("the service range %s holds %s, a node subnet a cluster gives", r, a)
			}
		}
	}
}

// A cluster-mode config whose service ranges leave out part of what the
// cluster hands out is refused, naming both; standalone it is the
// operator's choice.
func TestClusterConflict(t *testing.T) {
	cases := []struct {
		v4, v6 string
		want   string // "" when it is fine
	}{
		{"10.30.0.0/16", "fdff::/16", ""},
		{"10.30.0.0/15", "fdff::/18", ""},
		{"10.30.0.0/16", "", ""}, // IPv6 service IPs off
		{"10.30.0.0/17", "fdff::/16", "serviceRange 10.30.0.0/17 does not cover 10.30.0.0/16"},
		{"10.31.0.0/16", "fdff::/16", "serviceRange 10.31.0.0/16 does not cover 10.30.0.0/16"},
		{"10.30.0.0/16", "fdff:2000::/64", "serviceRangeV6 fdff:2000::/64 does not cover fdff::/20, where an Oakestra cluster gives instance IPv6"},
		{"10.30.0.0/16", "fdff::/20", "serviceRangeV6 fdff::/20 does not cover fdff:2000::/21"},
	}
	for _, tc := range cases {
		c := Default()
		c.ServiceRange, c.ServiceRangeV6 = tc.v4, tc.v6
		if _, err := c.Validate(); err != nil {
			t.Fatalf("%s %s standalone: %v", tc.v4, tc.v6, err)
		}
		c.ClientID, c.ClusterAddress = "node-1", "192.0.2.10"
		_, err := c.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "clusterAddress")) {
			t.Errorf("%s %s in cluster mode: %v, want %q", tc.v4, tc.v6, err, tc.want)
		}
	}
}
