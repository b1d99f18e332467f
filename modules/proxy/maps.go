package main

import (
	"net/netip"
	"sort"
)

// Go mirrors of the structs in proxy.h (TestStructsMatchC checks them).
// Addresses and ports are kept in network byte order, as the data plane has them.
type (
	pxConfig struct {
		RangeAddr  [4]byte
		RangeMask  [4]byte
		GwMAC      [6]byte
		Pad        uint16
		Range6Addr [16]byte
		Range6Mask [16]byte
		NodeIP     [4]byte // the inter-node tunnel: this node's end (zero: no kernel tunnel)
		TunnelPort [2]byte
		Pad2       uint16
		UlIfindex  uint32 // the underlay interface
	}
	pxService struct {
		Kind  uint32 // 0 round robin, 1 instance
		Count uint32
	}
	pxBackendKey struct {
		ServiceIP [4]byte
		Index     uint32
	}
	pxBackend struct {
		NsIP     [4]byte
		Ifindex  uint32 // 0 on another node
		MAC      [6]byte
		NodePort [2]byte // another node's tunnel
		NodeIP   [4]byte
	}
	pxFlow struct {
		Src, Dst     [4]byte
		Sport, Dport [2]byte
		Proto        uint8
		Pad          [3]uint8
	}
	pxSession struct {
		NewSrc, NewDst [4]byte
		Ifindex        uint32
		MAC            [6]byte
		Pad            uint16
		CsumDiff       uint32 // checksum change of the rewrite, precomputed
		LastSeen       uint64
		NodeIP         [4]byte // tunnel to this node (zero: deliver here)
		NodePort       [2]byte
		Pad2           uint16
		FromNode       [4]byte // the node the flow's packets come from (zero: a service here)
		Pad3           uint32
	}
	pxBackendKey6 struct {
		ServiceIP [16]byte
		Index     uint32
	}
	pxBackend6 struct {
		NsIP     [16]byte
		Ifindex  uint32
		MAC      [6]byte
		NodePort [2]byte
		NodeIP   [4]byte
	}
	pxFlow6 struct {
		Src, Dst     [16]byte
		Sport, Dport [2]byte
		Proto        uint8
		Pad          [3]uint8
	}
	pxSession6 struct {
		NewSrc, NewDst [16]byte
		Ifindex        uint32
		MAC            [6]byte
		Pad            uint16
		CsumDiff       uint32
		NodeIP         [4]byte
		NodePort       [2]byte
		Pad2           uint16
		FromNode       [4]byte
	}
	pxPeer struct {
		TxPackets, TxBytes uint64 // encapsulated to the node
		RxPackets, RxBytes uint64 // decapsulated from it
	}
	pxMiss struct {
		Family    uint8 // 4 or 6
		Proto     uint8
		Pad       uint16
		ServiceIP [16]byte // IPv4: the first 4 bytes
		Sender    [16]byte
	}
)

// stats indexes (proxy.h) and their names in GET /stats
const (
	statHit = iota
	statNew
	statPass
	statMalformed
	statError
	statV6Ext
	statMissDropped
	statICMPError
	statICMPErrorNoFlow
	statTunTooBig
	statTunNoRoute
	statDecapUnknownPeer
	statDecapNotPeerInstance
	statDecapNotLocal
	statDecapUnsupported
	statDecapWrongPeer
)

var statNames = []string{"hits", "newSessions", "passedToUserspace", "malformed", "errors", "v6ExtensionHeaders", "missEventsDropped",
	"icmpErrors", "icmpErrorsNoFlow", "tunnelTooBig", "tunnelNoRoute",
	"decapUnknownPeer", "decapNotPeerInstance", "decapNotLocal", "decapUnsupported", "decapWrongPeer"}

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
	remote   bool // on another node (cluster mode)
}

// plan maps every service IP to the local instances behind it: a round-robin
// IP to all of them in instance order, an instance IP to its one instance;
// IPv6 service IPs to the instances' IPv6 namespace addresses alike.
// Instances without an attached veth on this node are left out: their flows
// are the user-space proxy's (and its tunnel's), and so is a round-robin
// IP with any instance on another node (its rotation spans the nodes).
// Instances are matched to attachments by their IPv4 namespace address.
func plan(entries []entry, attached map[netip.Addr]local) translations {
	t := translations{
		services: map[[4]byte]pxService{}, backends: map[pxBackendKey]pxBackend{}, senders: map[[4]byte][4]byte{},
		services6: map[[16]byte]pxService{}, backends6: map[pxBackendKey6]pxBackend6{}, senders6: map[[16]byte][16]byte{},
	}
	spansNodes := map[netip.Addr]bool{}
	for _, e := range entries {
		for _, rr := range []netip.Addr{e.rrIP, e.rrIP6} {
			if e.remote && rr.IsValid() {
				spansNodes[rr] = true
			}
		}
	}
	for _, e := range sortEntries(entries) {
		l, ok := attached[e.nsIP]
		if !ok || !e.nsIP.Is4() || e.remote {
			continue
		}
		// The user-space proxy may pick this instance for a round robin
		// spanning nodes: its replies, to the sender's instance IP, must
		// reach that proxy's session, not start a flow here. So it is no
		// sender in the kernel (its own new flows take the user-space path).
		sender := !spansNodes[e.rrIP] && !spansNodes[e.rrIP6]
		if spansNodes[e.rrIP] {
			e.rrIP = netip.Addr{}
		}
		if spansNodes[e.rrIP6] {
			e.rrIP6 = netip.Addr{}
		}
		b := pxBackend{NsIP: e.nsIP.As4(), Ifindex: l.ifindex, MAC: l.mac}
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
		if e.nsIP6.Is6() {
			plan6(&t, e, pxBackend6{NsIP: e.nsIP6.As16(), Ifindex: l.ifindex, MAC: l.mac}, sender)
		}
	}
	return t
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
