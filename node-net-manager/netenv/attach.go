package netenv

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// Attach connects a service namespace to the bridge: a veth pair whose peer
// moves into the namespace with the service's addresses and default routes, the
// host end on the bridge, and DNAT rules for the port mappings; for a
// unikernel also its tap and NAT in the namespace. On error everything it made
// outside the namespace is removed again (the namespace is the caller's).
func (e *Env) Attach(a Attachment) (att Attached, err error) {
	if _, err := netlink.LinkByName(a.HostVeth); err == nil {
		return att, fmt.Errorf("%w: interface %s already exists on the node", errdefs.ErrConflict, a.HostVeth)
	}
	br, err := netlink.LinkByName(e.net.Bridge)
	if err != nil {
		return att, fmt.Errorf("find bridge %s: %w", e.net.Bridge, err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU = a.HostVeth, e.net.MTU
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: a.TempPeer}); err != nil {
		return att, fmt.Errorf("create veth %s: %w", a.HostVeth, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Detach(a))
		}
	}()
	host, err := netlink.LinkByName(a.HostVeth)
	if err != nil {
		return att, fmt.Errorf("find veth %s: %w", a.HostVeth, err)
	}
	if err := netlink.LinkSetAlias(host, fmt.Sprintf("%s%s/%d", aliasService, a.ServiceName, a.Instance)); err != nil {
		return att, fmt.Errorf("mark veth %s: %w", a.HostVeth, err)
	}
	if att.Peer, err = e.configurePeer(a); err != nil {
		return att, err
	}
	if a.Unikernel {
		if err := setupUnikernel(a.Netns, att.Peer, a.IPv4); err != nil {
			return att, err
		}
	}
	if err := netlink.LinkSetMaster(host, br); err != nil {
		return att, fmt.Errorf("put %s on %s: %w", a.HostVeth, e.net.Bridge, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return att, fmt.Errorf("bring up %s: %w", a.HostVeth, err)
	}
	for _, pm := range a.Ports {
		for i, t := range e.families {
			if err := t.run(append([]string{"-t", "nat", "-A", chainDNAT}, dnatRule(a, pm, i == 1)...)...); err != nil {
				return att, fmt.Errorf("port mapping %s: %w", pm, err)
			}
		}
	}
	att.HostIfindex = host.Attrs().Index
	return att, nil
}

// configurePeer moves the peer into the service's namespace and sets it up
// there; it returns the peer's final name.
func (e *Env) configurePeer(a Attachment) (string, error) {
	peer, err := netlink.LinkByName(a.TempPeer)
	if err != nil {
		return "", fmt.Errorf("find veth peer %s: %w", a.TempPeer, err)
	}
	ns, err := netns.GetFromPath(a.Netns)
	if err != nil {
		return "", fmt.Errorf("%w: open namespace %s: %v", errdefs.ErrInvalid, a.Netns, err)
	}
	defer ns.Close()
	if err := netlink.LinkSetNsFd(peer, int(ns)); err != nil {
		return "", fmt.Errorf("move %s into %s: %w", a.TempPeer, a.Netns, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return "", fmt.Errorf("netlink in %s: %w", a.Netns, err)
	}
	defer h.Close()
	if peer, err = h.LinkByName(a.TempPeer); err != nil {
		return "", fmt.Errorf("find %s in %s: %w", a.TempPeer, a.Netns, err)
	}
	name := a.TempPeer
	if _, err := h.LinkByName(a.Peer); errors.As(err, new(netlink.LinkNotFoundError)) {
		if err := h.LinkSetName(peer, a.Peer); err != nil {
			return "", fmt.Errorf("rename %s to %s: %w", a.TempPeer, a.Peer, err)
		}
		name = a.Peer
	}
	if lo, err := h.LinkByName("lo"); err == nil {
		if err := h.LinkSetUp(lo); err != nil {
			return "", fmt.Errorf("bring up lo in %s: %w", a.Netns, err)
		}
	}
	if err := h.AddrAdd(peer, addr(a.IPv4, e.net.NodeSubnet.Bits())); err != nil {
		return "", fmt.Errorf("address %s on %s: %w", a.IPv4, name, err)
	}
	if a.IPv6.IsValid() {
		if err := h.AddrAdd(peer, addr(a.IPv6, e.net.NodeSubnetV6.Bits())); err != nil {
			return "", fmt.Errorf("address %s on %s: %w", a.IPv6, name, err)
		}
	}
	if err := h.LinkSetUp(peer); err != nil {
		return "", fmt.Errorf("bring up %s: %w", name, err)
	}
	gws := []net.IP{e.net.Gateway.AsSlice()}
	if a.IPv6.IsValid() {
		gws = append(gws, e.net.GatewayV6.AsSlice())
	}
	for _, gw := range gws {
		err := h.RouteAdd(&netlink.Route{LinkIndex: peer.Attrs().Index, Gw: gw})
		if errors.Is(err, syscall.EEXIST) {
			return "", fmt.Errorf("%w: namespace %s already has a default route", errdefs.ErrConflict, a.Netns)
		}
		if err != nil {
			return "", fmt.Errorf("default route via %s: %w", gw, err)
		}
	}
	return name, nil
}

// Detach removes what Attach made: the port-mapping rules and the veth pair
// (deleting one end deletes the other, wherever it is). Parts already gone, such
// as a veth whose container exited, are not an error.
func (e *Env) Detach(a Attachment) error {
	var errs []error
	for _, pm := range a.Ports {
		for i, t := range e.families {
			errs = append(errs, t.deleteRule("nat", chainDNAT, dnatRule(a, pm, i == 1)...))
		}
	}
	for _, name := range []string{a.HostVeth, a.TempPeer} {
		l, err := netlink.LinkByName(name)
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("find %s: %w", name, err))
			continue
		}
		if err := netlink.LinkDel(l); err != nil && !errors.As(err, new(netlink.LinkNotFoundError)) {
			errs = append(errs, fmt.Errorf("delete %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Readopt takes back a service attached by an earlier run: its host veth must
// still exist, carry this service's mark and sit on the bridge; its port
// mappings are added again (Setup flushed the chains).
func (e *Env) Readopt(a Attachment) (Attached, error) {
	l, err := netlink.LinkByName(a.HostVeth)
	if err != nil {
		return Attached{}, fmt.Errorf("veth %s is gone: %w", a.HostVeth, err)
	}
	if want := fmt.Sprintf("%s%s/%d", aliasService, a.ServiceName, a.Instance); l.Attrs().Alias != want {
		return Attached{}, fmt.Errorf("veth %s is marked %q, not %q", a.HostVeth, l.Attrs().Alias, want)
	}
	br, err := netlink.LinkByName(e.net.Bridge)
	if err != nil || l.Attrs().MasterIndex != br.Attrs().Index {
		return Attached{}, fmt.Errorf("veth %s is not on %s", a.HostVeth, e.net.Bridge)
	}
	for _, pm := range a.Ports {
		for i, t := range e.families {
			if err := t.run(append([]string{"-t", "nat", "-A", chainDNAT}, dnatRule(a, pm, i == 1)...)...); err != nil {
				return Attached{}, errors.Join(fmt.Errorf("port mapping %s: %w", pm, err), e.Detach(a))
			}
		}
	}
	return Attached{HostIfindex: l.Attrs().Index, Peer: a.Peer}, nil
}
