package netenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"

	"github.com/oakestra/netmanager/node-net-manager/config"
)

// subnetStateFile holds the node subnet the cluster gave, so that a start
// with persist keeps the subnet its re-adopted services are addressed in.
const subnetStateFile = "subnet.json"

type subnetState struct {
	NodeSubnet   netip.Prefix `json:"nodeSubnet"`
	NodeSubnetV6 netip.Prefix `json:"nodeSubnetV6,omitzero"`
}

// SavedSubnet is the node subnet an earlier run adopted from its cluster and
// left in stateDir (with persist); ok is false when there is none.
func SavedSubnet(stateDir string) (v4, v6 netip.Prefix, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(stateDir, subnetStateFile))
	if errors.Is(err, os.ErrNotExist) {
		return v4, v6, false, nil
	}
	if err != nil {
		return v4, v6, false, fmt.Errorf("read saved subnet: %w", err)
	}
	var s subnetState
	if err := json.Unmarshal(data, &s); err != nil {
		return v4, v6, false, fmt.Errorf("saved subnet %s: %w", filepath.Join(stateDir, subnetStateFile), err)
	}
	return s.NodeSubnet, s.NodeSubnetV6, true, nil
}

func (e *Env) saveSubnet() error {
	data, _ := json.Marshal(subnetState{NodeSubnet: e.net.NodeSubnet, NodeSubnetV6: e.net.NodeSubnetV6})
	tmp := filepath.Join(e.stateDir, subnetStateFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("save subnet: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(e.stateDir, subnetStateFile)); err != nil {
		return fmt.Errorf("save subnet: %w", err)
	}
	return nil
}

func (e *Env) removeSavedSubnet() error {
	if err := os.Remove(filepath.Join(e.stateDir, subnetStateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove saved subnet: %w", err)
	}
	return nil
}

// Renumber moves the node to another subnet (the cluster's): the bridge's
// gateway addresses and the masquerading rules change; the bridge, its MAC
// and everything else stay. The caller makes sure no service is attached.
// It saves the subnet for a start with persist; on error the node keeps the
// old subnet.
func (e *Env) Renumber(n config.Network) (err error) {
	l, err := netlink.LinkByName(e.net.Bridge)
	if err != nil {
		return fmt.Errorf("find bridge %s: %w", e.net.Bridge, err)
	}
	old := e.net
	if err := swapAddrs(l, gatewayAddrs(old), gatewayAddrs(n)); err != nil {
		return fmt.Errorf("renumber %s to %s: %w", e.net.Bridge, n.NodeSubnet, err)
	}
	e.net = n
	if err := e.setMasquerade(); err != nil {
		e.net = old
		return errors.Join(fmt.Errorf("renumber to %s: %w", n.NodeSubnet, err),
			swapAddrs(l, gatewayAddrs(n), gatewayAddrs(old)), e.setMasquerade())
	}
	return e.saveSubnet()
}

// gatewayAddrs are the bridge's addresses in the node subnets.
func gatewayAddrs(n config.Network) []*netlink.Addr {
	as := []*netlink.Addr{addr(n.Gateway, n.NodeSubnet.Bits())}
	if n.NodeSubnetV6.IsValid() {
		as = append(as, addr(n.GatewayV6, n.NodeSubnetV6.Bits()))
	}
	return as
}

// swapAddrs adds the new addresses, then removes the old ones not among
// them; when an add fails it removes what it added and puts back what it
// removed. An old address whose IP a new one keeps with another prefix
// length goes first: IPv6 knows an address by its IP alone, so adding the
// new one would change nothing, and removing the old one would remove both.
func swapAddrs(l netlink.Link, old, new []*netlink.Addr) error {
	var moved []*netlink.Addr // old addresses of an IP a new one has
	for _, a := range old {
		if !containsAddr(new, a) && sameIP(new, a) {
			if err := netlink.AddrDel(l, a); err != nil && !errors.Is(err, os.ErrNotExist) {
				return errors.Join(fmt.Errorf("remove address %s: %w", a.IPNet, err), restoreAddrs(l, moved))
			}
			moved = append(moved, a)
		}
	}
	for i, a := range new {
		if err := netlink.AddrReplace(l, a); err != nil {
			for _, b := range new[:i] {
				if !containsAddr(old, b) {
					_ = netlink.AddrDel(l, b)
				}
			}
			return errors.Join(fmt.Errorf("address %s: %w", a.IPNet, err), restoreAddrs(l, moved))
		}
	}
	for _, a := range old {
		if containsAddr(new, a) || containsAddr(moved, a) {
			continue
		}
		if err := netlink.AddrDel(l, a); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove address %s: %w", a.IPNet, err)
		}
	}
	return nil
}

func restoreAddrs(l netlink.Link, as []*netlink.Addr) error {
	var errs []error
	for _, a := range as {
		if err := netlink.AddrReplace(l, a); err != nil {
			errs = append(errs, fmt.Errorf("put back address %s: %w", a.IPNet, err))
		}
	}
	return errors.Join(errs...)
}

// sameIP says whether an address in as has a's IP.
func sameIP(as []*netlink.Addr, a *netlink.Addr) bool {
	for _, b := range as {
		if b.IP.Equal(a.IP) {
			return true
		}
	}
	return false
}

func containsAddr(as []*netlink.Addr, a *netlink.Addr) bool {
	for _, b := range as {
		if b.IPNet.String() == a.IPNet.String() {
			return true
		}
	}
	return false
}

// removeStrayAddrs deletes the global addresses of the bridge that are not
// wanted: those of a subnet an earlier run adopted and did not take down.
func removeStrayAddrs(l netlink.Link, wanted []*netlink.Addr) error {
	have, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	for i := range have {
		a := &have[i]
		if a.Scope != int(netlink.SCOPE_UNIVERSE) || containsAddr(wanted, a) {
			continue
		}
		if err := netlink.AddrDel(l, a); err != nil {
			return fmt.Errorf("remove stale address %s from %s: %w", a.IPNet, l.Attrs().Name, err)
		}
	}
	return nil
}

// OutboundAddr is the source address of the node's default IPv4 route, the
// one the reference NetManager reports as the node's public address; ok is
// false on a node without a default route. No packet is sent.
func OutboundAddr() (netip.Addr, bool) {
	routes, err := netlink.RouteGet(net.IPv4(8, 8, 8, 8))
	if err != nil || len(routes) == 0 {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(routes[0].Src)
	if !ok || !a.Unmap().Is4() || a.IsLoopback() {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
