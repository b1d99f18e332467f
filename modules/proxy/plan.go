package main

import (
	"net/netip"
	"sort"
)

// local is one attached instance: where the proxy can deliver to it.
type local struct {
	ifindex uint32
	mac     [6]byte
	nsIP6   netip.Addr // the attachment's IPv6 namespace address, if any
}

// translations is what the maps should hold, computed from the service table
// and the attached instances. It is pure.
type translations struct {
	services  map[[4]byte]pxService
	backends  map[pxBackendKey]pxBackend
	senders   map[[4]byte][4]byte
	services6 map[[16]byte]pxService
	backends6 map[pxBackendKey6]pxBackend6
	senders6  map[[16]byte][16]byte
	// The inter-node tunnel: the instance IPs of instances on other nodes
	// (by the IPv4 of their node), the local instances a tunnel datagram
	// may be delivered to, and the peer nodes.
	remotes  map[[4]byte][4]byte
	remotes6 map[[16]byte][4]byte
	locals   map[[4]byte]pxBackend
	locals6  map[[16]byte]pxBackend6
	peers    map[[4]byte]bool
}

// entry is the part of a service table entry the proxy needs.
type entry struct {
	name     string
	instance int
	nsIP     netip.Addr
	rrIP     netip.Addr
	instIP   netip.Addr
	nsIP6    netip.Addr
	rrIP6    netip.Addr
	instIP6  netip.Addr
	remote   bool           // on another node (cluster mode)
	node     netip.AddrPort // that node's tunnel
}

// plan maps every service IP to the instances behind it: a round-robin IP
// to all of them in instance order, an instance IP to its one instance;
// IPv6 service IPs to the instances' IPv6 namespace addresses alike. Local
// instances without an attached veth are left out (matched by their IPv4
// namespace address). With the kernel tunnel (tunnel: the module is on the
// underlay), an instance on another node with an IPv4 node address is a
// backend reached through it; without, its flows are the user-space
// proxy's, and so is a round-robin IP with any instance on another node
// (its rotation spans the nodes) — whose local instances are then no
// senders in the kernel: the user-space proxy may pick one of them, and its
// replies, to the sender's instance IP, must reach that proxy's session,
// not start a flow here.
func plan(entries []entry, attached map[netip.Addr]local, tunnel bool) translations {
	t := translations{
		services: map[[4]byte]pxService{}, backends: map[pxBackendKey]pxBackend{}, senders: map[[4]byte][4]byte{},
		services6: map[[16]byte]pxService{}, backends6: map[pxBackendKey6]pxBackend6{}, senders6: map[[16]byte][16]byte{},
		remotes: map[[4]byte][4]byte{}, remotes6: map[[16]byte][4]byte{}, locals: map[[4]byte]pxBackend{},
		locals6: map[[16]byte]pxBackend6{}, peers: map[[4]byte]bool{},
	}
	tunnelled := func(e entry) bool { return tunnel && e.node.Addr().Is4() && e.nsIP.Is4() }
	userSpace := map[netip.Addr]bool{} // round robins the kernel cannot serve whole
	for _, e := range entries {
		for _, rr := range []netip.Addr{e.rrIP, e.rrIP6} {
			if e.remote && !tunnelled(e) && rr.IsValid() {
				userSpace[rr] = true
			}
		}
	}
	for _, e := range sortEntries(entries) {
		sender := !userSpace[e.rrIP] && !userSpace[e.rrIP6]
		if userSpace[e.rrIP] {
			e.rrIP = netip.Addr{}
		}
		if userSpace[e.rrIP6] {
			e.rrIP6 = netip.Addr{}
		}
		var b pxBackend
		switch l, ok := attached[e.nsIP]; {
		case e.remote && tunnelled(e):
			node := e.node.Addr().As4()
			b = pxBackend{NsIP: e.nsIP.As4(), NodeIP: node, NodePort: be16(e.node.Port())}
			t.peers[node] = true
			if e.instIP.Is4() {
				t.remotes[e.instIP.As4()] = node
			}
			if e.instIP6.Is6() && e.nsIP6.Is6() {
				t.remotes6[e.instIP6.As16()] = node
			}
			sender = false // it sends from its own node
		case !e.remote && ok && e.nsIP.Is4():
			b = pxBackend{NsIP: e.nsIP.As4(), Ifindex: l.ifindex, MAC: l.mac}
			t.locals[b.NsIP] = b
			if e.nsIP6.Is6() {
				t.locals6[e.nsIP6.As16()] = pxBackend6{NsIP: e.nsIP6.As16(), Ifindex: l.ifindex, MAC: l.mac}
			}
		default:
			continue
		}
		plan4(&t, e, b, sender)
		if e.nsIP6.Is6() {
			plan6(&t, e, pxBackend6{NsIP: e.nsIP6.As16(), Ifindex: b.Ifindex, MAC: b.MAC, NodePort: b.NodePort, NodeIP: b.NodeIP}, sender)
		}
	}
	return t
}

func plan4(t *translations, e entry, b pxBackend, sender bool) {
	if e.instIP.Is4() {
		if sender {
			t.senders[e.nsIP.As4()] = e.instIP.As4()
		}
		t.services[e.instIP.As4()] = pxService{Kind: 1, Count: 1}
		t.backends[pxBackendKey{ServiceIP: e.instIP.As4()}] = b
	}
	if e.rrIP.Is4() {
		s := t.services[e.rrIP.As4()]
		t.backends[pxBackendKey{ServiceIP: e.rrIP.As4(), Index: s.Count}] = b
		s.Count++
		t.services[e.rrIP.As4()] = s
	}
}

func plan6(t *translations, e entry, b pxBackend6, sender bool) {
	if e.instIP6.Is6() {
		if sender {
			t.senders6[e.nsIP6.As16()] = e.instIP6.As16()
		}
		t.services6[e.instIP6.As16()] = pxService{Kind: 1, Count: 1}
		t.backends6[pxBackendKey6{ServiceIP: e.instIP6.As16()}] = b
	}
	if e.rrIP6.Is6() {
		s := t.services6[e.rrIP6.As16()]
		t.backends6[pxBackendKey6{ServiceIP: e.rrIP6.As16(), Index: s.Count}] = b
		s.Count++
		t.services6[e.rrIP6.As16()] = s
	}
}

// be16 is a port in network byte order.
func be16(p uint16) [2]byte { return [2]byte{byte(p >> 8), byte(p)} }

func sortEntries(es []entry) []entry {
	out := append([]entry(nil), es...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].name != out[j].name {
			return out[i].name < out[j].name
		}
		return out[i].instance < out[j].instance
	})
	return out
}
