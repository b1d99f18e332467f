package main

import (
	"context"
	"net/netip"

	"github.com/sirupsen/logrus"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/node-net-manager/netenv"
	"github.com/oakestra/netmanager/node-net-manager/proxy"
)

// addressMover moves what is bound to the node's address when it changes:
// the user-space tunnel (startProxy hands it over, with its translator),
// the eBPF Manager's tunnel end and the cluster link's reports.
type addressMover struct {
	tunnel *proxy.Tunnel // nil while the user-space proxy is off
	tr     *proxy.Translator
}

// setProxy hands over the user-space proxy's tunnel and translator (before
// followAddress starts).
func (a *addressMover) setProxy(tunnel *proxy.Tunnel, tr *proxy.Translator) {
	if a != nil {
		a.tunnel, a.tr = tunnel, tr
	}
}

// followAddress follows the node's address when nodeIP is not configured:
// on each change of the default route's source address (netlink address
// and route events, debounced) the user-space tunnel is bound to the new
// address, the eBPF Manager's tunnel end and the cluster link move there,
// and the cluster is told (service/address-changed). The returned func
// stops following.
func followAddress(d parts, em *ebpfmanager.Manager, link *cluster.Link) (stop func()) {
	if d.net.NodeIPSet || d.moves == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	port := uint16(d.net.TunnelPort)
	done, err := netenv.WatchOutbound(ctx, netenv.WatchOptions{Current: d.net.NodeIP, OnChange: func(old, cur netip.Addr) {
		d.moves.move(netip.AddrPortFrom(old, port), netip.AddrPortFrom(cur, port), em, link, d.log)
	}})
	if err != nil {
		cancel()
		d.log.WithError(err).Warn("the node's address is not followed: it stays " + d.net.NodeIP.String())
		return func() {}
	}
	d.log.WithField("address", d.net.NodeIP).Info("following the node's address (nodeIP is not configured)")
	return func() { cancel(); <-done }
}

// move carries out one change of the node's address, each part on its
// own: one that fails is logged and the others move all the same.
func (a *addressMover) move(old, cur netip.AddrPort, em *ebpfmanager.Manager, link *cluster.Link, log logrus.FieldLogger) {
	l := log.WithFields(logrus.Fields{"from": old.Addr(), "to": cur.Addr()})
	l.Info("the node's address changed: moving the tunnel and telling the cluster")
	if a.tunnel != nil {
		if err := a.tunnel.Rebind(cur); err != nil {
			l.WithError(err).Error("user-space tunnel: it stays at the old address")
		}
	}
	if a.tr != nil {
		a.tr.SetSelf(cur)
	}
	if em != nil {
		if err := em.SetTunnel(cur); err != nil {
			l.WithError(err).Warn("eBPF modules: move the tunnel end")
		}
	}
	if err := link.SetNode(cur); err != nil {
		l.WithError(err).Warn("cluster: report the instances at the new address (a reconnect reports them again)")
	}
}
