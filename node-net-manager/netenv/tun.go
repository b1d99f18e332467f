package netenv

import (
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

const (
	aliasProxy      = "netmanager:proxy"
	addrGenModeNone = 1 // IN6_ADDR_GEN_MODE_NONE
)

// OpenTun creates the TUN device the user-space proxy reads, up with the
// bridge's MTU and the routes to the service ranges, and returns its file.
// The device (and its route) goes away when the file is closed.
func (e *Env) OpenTun(name string, routes ...netip.Prefix) (_ *os.File, err error) {
	if _, err := netlink.LinkByName(name); err == nil {
		return nil, fmt.Errorf("%w: interface %s already exists", errdefs.ErrConflict, name)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create tun %s: %w", name, err)
	}
	// Only now, with the device attached, may the file join Go's poller: the
	// tun driver registers no wait queue for a file that has no device yet,
	// and a reader polled from before would never be woken.
	f := os.NewFile(uintptr(fd), "/dev/net/tun")
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("find tun %s: %w", name, err)
	}
	type step struct {
		what string
		fn   func() error
	}
	steps := []step{
		{"mark", func() error { return netlink.LinkSetAlias(l, aliasProxy) }},
		{"set mtu", func() error { return netlink.LinkSetMTU(l, e.net.MTU) }},
		// No link-local address: the kernel would send router and MLD
		// messages into the proxy, which has nothing to do with them.
		{"turn off IPv6 address generation", func() error { return netlink.LinkSetIP6AddrGenMode(l, addrGenModeNone) }},
		{"bring up", func() error { return netlink.LinkSetUp(l) }},
	}
	for _, r := range routes {
		steps = append(steps, step{"route " + r.String(), func() error {
			return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index,
				Dst: &net.IPNet{IP: r.Addr().AsSlice(), Mask: net.CIDRMask(r.Bits(), r.Addr().BitLen())}})
		}})
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return nil, fmt.Errorf("tun %s: %s: %w", name, s.what, err)
		}
	}
	return f, nil
}
