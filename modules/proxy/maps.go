package main

import (
	"net/netip"
	"sort"
)

// Go mirrors of the structs in proxy.h (TestStructsMatchC checks them).
// Addresses and ports are kept in network byte order, as the data plane has them.
type (
	pxConfig struct {
		RangeAddr [4]byte
		RangeMask [4]byte
		GwMAC     [6]byte
		Pad       uint16
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
		NsIP    [4]byte
		Ifindex uint32
		MAC     [6]byte
		Pad     uint16
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
		Pad2           uint32
		LastSeen       uint64
	}
)

// stats indexes (proxy.h)
var statNames = []string{"hits", "newSessions", "passedToUserspace", "malformed", "errors"}

// local is one attached instance: where the proxy can deliver to it.
type local struct {
	ifindex uint32
	mac     [6]byte
}

// translations is what the maps should hold, computed from the service table
// and the attached instances. It is pure.
type translations struct {
	services map[[4]byte]pxService
	backends map[pxBackendKey]pxBackend
	senders  map[[4]byte][4]byte
}

// entry is the part of a service table entry the proxy needs.
type entry struct {
	name     string
	instance int
	nsIP     netip.Addr
	rrIP     netip.Addr
	instIP   netip.Addr
}

// plan maps every service IP to the local instances behind it: a round-robin
// IP to all of them in instance order, an instance IP to its one instance.
// Instances without an attached veth on this node are left out: their flows
// are the user-space proxy's (and its tunnel's).
func plan(entries []entry, attached map[netip.Addr]local) translations {
	t := translations{services: map[[4]byte]pxService{}, backends: map[pxBackendKey]pxBackend{}, senders: map[[4]byte][4]byte{}}
	for _, e := range sortEntries(entries) {
		l, ok := attached[e.nsIP]
		if !ok || !e.nsIP.Is4() {
			continue
		}
		b := pxBackend{NsIP: e.nsIP.As4(), Ifindex: l.ifindex, MAC: l.mac}
		if e.instIP.IsValid() {
			t.senders[e.nsIP.As4()] = e.instIP.As4()
			t.services[e.instIP.As4()] = pxService{Kind: 1, Count: 1}
			t.backends[pxBackendKey{ServiceIP: e.instIP.As4()}] = b
		}
		if e.rrIP.IsValid() {
			s := t.services[e.rrIP.As4()]
			t.backends[pxBackendKey{ServiceIP: e.rrIP.As4(), Index: s.Count}] = b
			s.Count++
			t.services[e.rrIP.As4()] = s
		}
	}
	return t
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
