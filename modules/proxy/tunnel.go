package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// checkTunnel accepts at most one host interface, the underlay the kernel
// tunnel runs on, and only on a node with an IPv4 tunnel end.
func checkTunnel(base module.Base) error {
	switch {
	case len(base.HostInterfaces) > 1:
		return fmt.Errorf("%w: interfaces %v: the proxy takes one host interface, the underlay its tunnel runs on", module.ErrInvalidConfig, base.HostInterfaces)
	case len(base.HostInterfaces) == 1 && (!base.Tunnel.IsValid() || !base.Tunnel.Addr().Unmap().Is4()):
		return fmt.Errorf("%w: interfaces %v: the kernel tunnel needs the node's IPv4 node IP and tunnel port, and this node has %v",
			module.ErrInvalidConfig, base.HostInterfaces, base.Tunnel)
	}
	return nil
}

// attachUnderlay starts the kernel tunnel on the underlay interface, which
// must hold the node IP: datagrams to it are decapsulated there, and remote
// instances become backends.
func (p *Proxy) attachUnderlay(ifc module.Interface) error {
	self := p.base.Tunnel.Addr().Unmap()
	if err := holds(ifc.Ifindex, self); err != nil {
		return fmt.Errorf("%w: interface %s: %v", module.ErrInvalidConfig, ifc.Name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.conf
	c.NodeIP, c.TunnelPort, c.UlIfindex = self.As4(), be16(p.base.Tunnel.Port()), uint32(ifc.Ifindex)
	if err := p.writeConfig(c); err != nil {
		return err
	}
	u := ifc
	p.underlay = &u
	return p.sync()
}

// detachUnderlay stops the kernel tunnel: remote instances leave the maps,
// and the tunnel's sessions go (their flows take the user-space tunnel).
func (p *Proxy) detachUnderlay(ifc module.Interface) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.underlay == nil || p.underlay.Ifindex != ifc.Ifindex {
		return nil
	}
	c := p.conf
	c.NodeIP, c.TunnelPort, c.UlIfindex = [4]byte{}, [2]byte{}, 0
	p.underlay = nil
	return errors.Join(p.writeConfig(c), p.sync(), p.dropTunnelSessions(), p.clearNexthops())
}

// nexthopTTL is how long the data plane's cached way to a peer (route,
// MTU, next hop's MAC) is used before it asks the FIB again.
const nexthopTTL = time.Second

// flushNexthops empties the next-hop cache every ttl, so that route and
// neighbour changes reach the data plane within it; the returned func
// stops it.
func (p *Proxy) flushNexthops(ttl time.Duration) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(ttl)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if err := p.clearNexthops(); err != nil {
					p.base.Log.WithError(err).Warn("proxy: flush the next-hop cache")
				}
			}
		}
	}()
	return func() { close(stop); <-done }
}

func (p *Proxy) clearNexthops() error {
	var k [4]byte
	return errors.Join(deleteStale[[4]byte, pxNexthop](p.maps["nexthops"], func([4]byte) bool { return false }, &k)...)
}

// holds says whether the interface has the address.
func holds(ifindex int, a netip.Addr) error {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return err
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list its addresses: %w", err)
	}
	for _, ad := range addrs {
		if x, ok := netip.AddrFromSlice(ad.IP.To4()); ok && x == a {
			return nil
		}
	}
	return fmt.Errorf("it does not hold the node IP %s: the tunnel's underlay must", a)
}

// writeConfig puts c into the config map; the caller holds mu.
func (p *Proxy) writeConfig(c pxConfig) error {
	if err := p.maps["config"].Put(uint32(0), c); err != nil {
		return fmt.Errorf("write the config map: %w", err)
	}
	p.conf = c
	return nil
}

// syncPeers makes the peers map hold exactly the peer nodes, keeping the
// counters of those it had.
func (p *Proxy) syncPeers(want map[[4]byte]bool) error {
	m := p.maps["peers"]
	var k [4]byte
	errs := deleteStale[[4]byte, []pxPeer](m, func(key [4]byte) bool { return want[key] }, &k)
	zero := make([]pxPeer, ebpf.MustPossibleCPU())
	for node := range want {
		if err := m.Update(node, zero, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			errs = append(errs, fmt.Errorf("update %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

// dropTunnelSessions removes the sessions of flows through the kernel
// tunnel; the caller holds mu.
func (p *Proxy) dropTunnelSessions() error {
	return errors.Join(
		dropWhere(p.maps["sessions"], func(_ pxFlow, s pxSession) bool { return s.NodeIP != [4]byte{} || s.FromNode != [4]byte{} }),
		dropWhere(p.maps["sessions6"], func(_ pxFlow6, s pxSession6) bool { return s.NodeIP != [4]byte{} || s.FromNode != [4]byte{} }))
}

// PeerStats are the kernel tunnel's counters for one other node.
type PeerStats struct {
	TxPackets uint64 `json:"txPackets"` // encapsulated to it
	TxBytes   uint64 `json:"txBytes"`   // outer frames, Ethernet included
	RxPackets uint64 `json:"rxPackets"` // decapsulated from it
	RxBytes   uint64 `json:"rxBytes"`
}

// servePeers answers the counters of every peer node, by node IP.
func (p *Proxy) servePeers(w http.ResponseWriter, _ *http.Request) {
	out := map[string]PeerStats{}
	var k [4]byte
	var perCPU []pxPeer
	it := p.maps["peers"].Iterate()
	for it.Next(&k, &perCPU) {
		var s PeerStats
		for _, c := range perCPU {
			s.TxPackets += c.TxPackets
			s.TxBytes += c.TxBytes
			s.RxPackets += c.RxPackets
			s.RxBytes += c.RxBytes
		}
		out[netip.AddrFrom4(k).String()] = s
	}
	if err := it.Err(); err != nil {
		module.WriteError(w, http.StatusInternalServerError, fmt.Errorf("read the peers: %w", err))
		return
	}
	module.WriteJSON(w, http.StatusOK, out)
}
