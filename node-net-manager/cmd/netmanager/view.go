package main

import (
	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

// servicesView is the deployer as the API shows it (GET /services): a
// standalone node's instances with the service IPs it allocated; in
// cluster mode with the cluster's, from its table, or none and pending
// until the table has the instance — never the node's own allocation,
// which the cluster did not give.
type servicesView struct {
	api.Deployer
	// clustered says whether the node is registered with a cluster.
	clustered func() bool
	// cached is what the cluster's table holds of a job, without asking.
	cached func(job string) []table.Entry
}

func (v servicesView) List() []deploy.Record {
	recs := v.Deployer.List()
	if !v.clustered() {
		for i := range recs {
			recs[i].ServiceIPsFrom = deploy.IPsFromNode
		}
		return recs
	}
	jobs := map[string][]table.Entry{}
	for i := range recs {
		r := &recs[i]
		es, ok := jobs[r.ServiceName]
		if !ok {
			es = v.cached(r.ServiceName)
			jobs[r.ServiceName] = es
		}
		r.ServiceIPs, r.ServiceIPsFrom = nil, deploy.IPsPending
		for _, e := range es {
			if e.Instance == r.Instance && e.NsIP == r.NsAddress {
				r.ServiceIPs, r.ServiceIPsFrom = e.ServiceIPs, deploy.IPsFromCluster
				break
			}
		}
	}
	return recs
}
