package integration

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/test/clusterstub"
)

// clusterIPs are an instance's service IPs as the cluster lists them, as
// "policy=address" in order.
func clusterIPs(in cluster.Instance) []string {
	policy := map[string]string{"RR": "round_robin", "instance_ip": "instance", "Closest": "closest"}
	var out []string
	for _, s := range in.ServiceIP {
		for _, a := range []string{s.Address, s.AddressV6} {
			if a != "" {
				out = append(out, policy[s.IPType]+"="+a)
			}
		}
	}
	slices.Sort(out)
	return out
}

// assertClusterServices waits until GET /services on each node shows, for
// every instance it runs, exactly the service IPs the cluster gave that
// instance, marked as the cluster's.
func assertClusterServices(t *testing.T, m *clusterstub.Manager, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		why := "not asked"
		for deadline := time.Now().Add(10 * time.Second); why != "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			var recs []deploy.Record
			getJSON(t, n, "/services", &recs)
			why = mismatch(m, recs)
		}
		if why != "" {
			t.Fatalf("GET /services on %s: %s", n.ns.Name, why)
		}
	}
}

// mismatch says how recs differ from the cluster's table ("" when they
// do not).
func mismatch(m *clusterstub.Manager, recs []deploy.Record) string {
	if len(recs) == 0 {
		return "no instances"
	}
	for _, r := range recs {
		var want []string
		for _, in := range m.Instances(r.ServiceName) {
			if in.InstanceNumber == r.Instance {
				want = clusterIPs(in)
			}
		}
		var got []string
		for _, s := range r.ServiceIPs {
			got = append(got, fmt.Sprintf("%s=%s", s.Policy, s.Address))
		}
		slices.Sort(got)
		if r.ServiceIPsFrom != deploy.IPsFromCluster || want == nil || !slices.Equal(got, want) {
			return fmt.Sprintf("%s instance %d: %s %v, the cluster's %v", r.ServiceName, r.Instance, r.ServiceIPsFrom, got, want)
		}
	}
	return ""
}
