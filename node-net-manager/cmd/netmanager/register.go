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
	link *cluster.Link
	mgr  *deploy.Manager
	log  logrus.FieldLogger
}

func (r *registrar) ClientID() string { return r.link.ClientID() }

// Register connects to the cluster and adopts its node subnet. A subnet the
// node cannot use is an error, and a registration this call made is undone.
func (r *registrar) Register(ctx context.Context, clientID, addr string) (cluster.Registered, error) {
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
