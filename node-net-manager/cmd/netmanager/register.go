package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/node-net-manager/config"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// registrar joins the node to its cluster (the api.Registrar): the link
// connects and reports, then the node moves to the subnet the cluster gave
// when it can.
type registrar struct {
	link clusterLink
	mgr  nodeServices
	log  logrus.FieldLogger
}

// clusterLink is what the registrar needs of the cluster.Link.
type clusterLink interface {
	Register(ctx context.Context, clientID, addr string) (cluster.Registered, error)
	ClientID() string
	Close()
}

// nodeServices is what the registrar needs of the deploy.Manager.
type nodeServices interface {
	Subnet() config.Network
	Renumber(n config.Network) error
	RemoveStale(ctx context.Context) (int, *deploy.Record, error)
}

func (r *registrar) ClientID() string { return r.link.ClientID() }

// Leave ends the node's registration for a restarted NodeEngine (it
// registers under a new id) when the NodeEngine before it is gone: none of
// the node's instances is alive (deploy.Manager.RemoveStale). Their
// deployments are removed as undeploys remove them, and the node leaves
// the cluster (the MQTT session under the old id ends); the registration
// that follows joins again under the new id, and the empty node may move to
// the subnet the cluster gives then. What a teardown could not remove is
// logged: the records are gone all the same, so refusing would not help.
func (r *registrar) Leave(ctx context.Context) (int, error) {
	removed, alive, err := r.mgr.RemoveStale(ctx)
	if alive != nil {
		return 0, fmt.Errorf("%w: %s", errdefs.ErrConflict, stillRuns(*alive))
	}
	if err != nil {
		r.log.WithError(err).Warn("removing the previous NodeEngine's deployments left something behind")
	}
	r.link.Close()
	return removed, nil
}

// stillRuns says which instance of the previous NodeEngine runs, and why it
// counts as running.
func stillRuns(rec deploy.Record) string {
	if rec.Kind == deploy.KindUnikernel {
		return fmt.Sprintf("instance %d of %s still runs (a unikernel: a process is in its namespace %s)", rec.Instance, rec.ServiceName, rec.Netns)
	}
	return fmt.Sprintf("instance %d of %s still runs (a container: its process %d exists)", rec.Instance, rec.ServiceName, rec.PID)
}

// Register connects to the cluster and adopts its node subnet. Service
// ranges that leave out part of what an Oakestra cluster hands out, or a
// subnet the node cannot use, is an error; a registration this call made
// is undone.
func (r *registrar) Register(ctx context.Context, clientID, addr string) (cluster.Registered, error) {
	if err := r.mgr.Subnet().ClusterConflict(); err != nil {
		return cluster.Registered{}, fmt.Errorf("%w: cluster %s: %v", errdefs.ErrConflict, addr, err)
	}
	fresh := r.link.ClientID() == ""
	reg, err := r.link.Register(ctx, clientID, addr)
	if err != nil {
		return reg, err
	}
	cur := r.mgr.Subnet()
	next, err := cur.Adopt(reg.Subnet.Address, reg.Subnet.AddressV6)
	if err == nil {
		err = r.move(cur, next)
	} else {
		err = fmt.Errorf("%w: cluster %s gave an unusable node subnet: %v", errdefs.ErrUnavailable, addr, err)
	}
	if err != nil {
		if fresh {
			r.link.Close()
		}
		return cluster.Registered{}, err
	}
	now := r.mgr.Subnet()
	reg.NodeSubnet, reg.NodeSubnetV6 = now.NodeSubnet, now.NodeSubnetV6
	return reg, nil
}

// move renumbers the node to next unless staysBecause says why not; a node
// with instances deployed keeps its subnet too. Either is logged, not an
// error: the cluster reaches instances by the addresses they report.
func (r *registrar) move(cur, next config.Network) error {
	if why := staysBecause(cur, next); why != "" {
		if why != sameSubnet {
			r.log.WithFields(logrus.Fields{"subnet": cur.NodeSubnet, "cluster": next.NodeSubnet}).Warn("keeping the node subnet: " + why)
		}
		return nil
	}
	err := r.mgr.Renumber(next)
	if errors.Is(err, errdefs.ErrConflict) {
		r.log.WithError(err).WithField("cluster", next.NodeSubnet).Warn("keeping the node subnet")
		return nil
	}
	return err
}

const sameSubnet = "it is the cluster's"

// staysBecause says why the node cannot move from cur to next ("" when it
// can): the node is there already, or its node IP (the tunnel's address and
// the host_ip it reports) is the bridge gateway, which moving would take
// away.
func staysBecause(cur, next config.Network) string {
	switch {
	case cur.NodeSubnet == next.NodeSubnet && cur.NodeSubnetV6 == next.NodeSubnetV6:
		return sameSubnet
	case cur.NodeSubnet.Contains(cur.NodeIP):
		return fmt.Sprintf("the node IP %s is the bridge's (no default route and no nodeIP configured)", cur.NodeIP)
	}
	return ""
}
