package config

import (
	"bytes"
	"encoding/json"
	"testing"
)

// Any configuration file either loads and validates into a network whose
// subnets and gateways agree, or is refused with an error — never a panic;
// and any cluster answer Adopt takes keeps the subnets consistent.
func FuzzConfig(f *testing.F) {
	f.Add([]byte(`{"nodeSubnet": "10.18.0.0/24", "nodeSubnetV6": "fd00:18::/64", "nodeIP": "192.168.77.1"}`), "10.18.7.64", "fd00:18:7::100")
	f.Add([]byte(`{"nodeSubnetV6": "", "serviceRange": "10.31.0.0/16", "mtu": 9000}`), "10.18.1.0", "")
	f.Add([]byte(`{"clusterSubnetBits": 30, "clusterSubnetBitsV6": 126}`), "10.0.0.4", "fd00::4")
	f.Fuzz(func(t *testing.T, file []byte, addr, addr6 string) {
		c := Default()
		dec := json.NewDecoder(bytes.NewReader(file))
		dec.DisallowUnknownFields()
		if dec.Decode(&c) != nil {
			return
		}
		n, err := c.Validate()
		if err != nil {
			return
		}
		check := func(n Network) {
			if !n.NodeSubnet.Contains(n.Gateway) || n.NodeSubnet.Overlaps(n.ServiceRange) ||
				(n.NodeSubnetV6.IsValid() && !n.NodeSubnetV6.Contains(n.GatewayV6)) {
				t.Fatalf("inconsistent network from %s: %+v", file, n)
			}
		}
		check(n)
		if a, err := n.Adopt(addr, addr6); err == nil {
			check(a)
			if a.NodeSubnet.Bits() != n.ClusterBits || a.NodeIP != n.NodeIP {
				t.Fatalf("adopted %q: %+v", addr, a)
			}
		}
	})
}
