package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A WAN's next hop is resolved by the kernel (the data plane sends with
// bpf_redirect_neigh). Packets for a next hop that does not answer wait in
// its neighbour entry's queue until ARP gives up, 3 s with the default
// three probes a second apart; the kernel holds them so long that TCP
// counts each retransmission of theirs as still in the host queue and
// skips it (TCPSpuriousRtxHostQueues). A stream failing over from a WAN
// whose link lost carrier would stall that long after the WAN is marked
// down. So a WAN going down releases its next hop's entry.

// nexthops deletes neighbour entries through a netlink handle opened in the
// namespace of the WAN's interface.
type nexthops struct{ h *netlink.Handle }

// openNexthops opens the handle in the calling thread's namespace.
func openNexthops() (*nexthops, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	return &nexthops{h: h}, nil
}

func (n *nexthops) close() {
	if n != nil && n.h != nil {
		n.h.Close()
	}
}

// release deletes ip's neighbour entry on ifindex, freeing the packets
// queued on it, unless an operator made it permanent (or it needs no ARP).
// An entry that is not there is no error.
func (n *nexthops) release(ifindex int, ip netip.Addr) error {
	if n == nil {
		return nil
	}
	list, err := n.h.NeighList(ifindex, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list neighbours: %w", err)
	}
	for _, e := range list {
		if !e.IP.Equal(net.IP(ip.AsSlice())) || e.State&(netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0 {
			continue
		}
		if err := n.h.NeighDel(&e); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete neighbour %s: %w", ip, err)
		}
	}
	return nil
}
