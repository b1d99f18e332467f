package main

import (
	"maps"
	"slices"
)

// clusterCounts is what the metrics read of the cluster table
// (cluster.Table): the answers it rejected by reason, and the instances
// placed on this node that it left out.
type clusterCounts interface {
	Rejected() map[string]uint64
	LeftOut() uint64
}

func collectCluster(e sink, c clusterCounts) {
	if c == nil {
		return
	}
	rej := c.Rejected()
	for _, r := range slices.Sorted(maps.Keys(rej)) {
		e.counter("netmanager_cluster_answers_rejected_total", "The cluster's table answers rejected whole (the job's cached entries stay), by reason.",
			float64(rej[r]), "reason", r)
	}
	e.counter("netmanager_cluster_instances_left_out_total", "Instances the cluster's answers placed on this node that it does not run, left out.", float64(c.LeftOut()))
}
