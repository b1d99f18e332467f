package main

import (
	"net/netip"
	"testing"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

func TestPlan(t *testing.T) {
	a4 := func(s string) [4]byte { return netip.MustParseAddr(s).As4() }
	a16 := func(s string) [16]byte { return netip.MustParseAddr(s).As16() }
	type want struct {
		services  map[[4]byte]pxService
		services6 map[[16]byte]pxService
		backend   map[pxBackendKey][4]byte   // namespace IP behind a key
		backend6  map[pxBackendKey6][16]byte // namespace IPv6 behind a key
		senders   map[[4]byte][4]byte
		senders6  map[[16]byte][16]byte
		absent    [][4]byte  // service IPs that must not be planned
		absent6   [][16]byte // service IPv6s that must not be planned
	}
	for _, c := range []struct {
		name     string
		entries  func() []entry
		attached func() map[netip.Addr]local
		want     want
	}{{
		name: "everything local", entries: entries, attached: attachedAll,
		want: want{
			services: map[[4]byte]pxService{a4("10.30.0.1"): {Kind: 0, Count: 3}, a4("10.30.0.12"): {Kind: 1, Count: 1}},
			services6: map[[16]byte]pxService{a16("fdff:2000::1"): {Kind: 0, Count: 3}, a16("fdff:2000::9"): {Kind: 0, Count: 1},
				a16("fdff:2000::b"): {Kind: 1, Count: 1}, a16("fdff:2000::2"): {Kind: 1, Count: 1}},
			backend6: map[pxBackendKey6][16]byte{{ServiceIP: a16("fdff:2000::1"), Index: 0}: a16("fd00:18::3"),
				{ServiceIP: a16("fdff:2000::1"), Index: 2}: a16("fd00:18::5"), {ServiceIP: a16("fdff:2000::c")}: a16("fd00:18::5")},
			senders6: map[[16]byte][16]byte{a16("fd00:18::2"): a16("fdff:2000::2"), a16("fd00:18::4"): a16("fdff:2000::b")},
		},
	}, {
		name: "instance 1 remote", entries: entries,
		attached: func() map[netip.Addr]local {
			m := attachedAll()
			delete(m, netip.MustParseAddr("10.18.0.4"))
			return m
		},
		want: want{
			services:  map[[4]byte]pxService{a4("10.30.0.1"): {Kind: 0, Count: 2}},
			services6: map[[16]byte]pxService{a16("fdff:2000::1"): {Kind: 0, Count: 2}},
			backend:   map[pxBackendKey][4]byte{{ServiceIP: a4("10.30.0.1"), Index: 1}: a4("10.18.0.5")},
			backend6:  map[pxBackendKey6][16]byte{{ServiceIP: a16("fdff:2000::1"), Index: 1}: a16("fd00:18::5")},
			senders:   map[[4]byte][4]byte{a4("10.18.0.2"): a4("10.30.0.2")},
			absent6:   [][16]byte{a16("fdff:2000::b")},
		},
	}, {
		name: "instance 0 without IPv6",
		entries: func() []entry {
			es := entries()
			for i := range es {
				if es[i].name == "app.ns.web.ns" && es[i].instance == 0 {
					es[i].nsIP6 = netip.Addr{}
				}
			}
			return es
		},
		attached: attachedAll,
		want: want{
			services:  map[[4]byte]pxService{a4("10.30.0.1"): {Kind: 0, Count: 3}, a4("10.30.0.10"): {Kind: 1, Count: 1}},
			services6: map[[16]byte]pxService{a16("fdff:2000::1"): {Kind: 0, Count: 2}},
			backend6:  map[pxBackendKey6][16]byte{{ServiceIP: a16("fdff:2000::1"), Index: 0}: a16("fd00:18::4")},
			absent6:   [][16]byte{a16("fdff:2000::a")},
		},
	}, {
		// Cluster mode: web's instance 1 runs on another node (its
		// namespace IP even collides with one attached here). Its round
		// robin spans the nodes: the user-space proxy's, in both families;
		// web's local instances keep their instance IPs but are no senders
		// (the user-space proxy's flows to them must get its replies).
		name: "instance 1 on another node",
		entries: func() []entry {
			es := entries()
			for i := range es {
				es[i].remote = es[i].name == "app.ns.web.ns" && es[i].instance == 1
			}
			return es
		},
		attached: attachedAll,
		want: want{
			services: map[[4]byte]pxService{a4("10.30.0.10"): {Kind: 1, Count: 1}, a4("10.30.0.12"): {Kind: 1, Count: 1}, a4("10.30.0.9"): {Kind: 0, Count: 1}},
			backend:  map[pxBackendKey][4]byte{{ServiceIP: a4("10.30.0.12")}: a4("10.18.0.5")},
			senders:  map[[4]byte][4]byte{a4("10.18.0.2"): a4("10.30.0.2")},
			absent:   [][4]byte{a4("10.30.0.1"), a4("10.30.0.11")},
			absent6:  [][16]byte{a16("fdff:2000::1"), a16("fdff:2000::b")},
		},
	}, {
		name: "no IPv6 service IPs",
		entries: func() []entry {
			es := entries()
			for i := range es {
				es[i].rrIP6, es[i].instIP6 = netip.Addr{}, netip.Addr{}
			}
			return es
		},
		attached: attachedAll,
		want: want{
			services: map[[4]byte]pxService{a4("10.30.0.1"): {Kind: 0, Count: 3}},
			absent6:  [][16]byte{a16("fdff:2000::1"), a16("fdff:2000::2")},
		},
	}} {
		t.Run(c.name, func(t *testing.T) {
			tr := plan(c.entries(), c.attached(), false)
			for k, v := range c.want.services {
				if tr.services[k] != v {
					t.Errorf("service %v: %+v, want %+v", k, tr.services[k], v)
				}
			}
			for k, v := range c.want.services6 {
				if tr.services6[k] != v {
					t.Errorf("service6 %v: %+v, want %+v", netip.AddrFrom16(k), tr.services6[k], v)
				}
			}
			for k, ns := range c.want.backend {
				if b, ok := tr.backends[k]; !ok || b.NsIP != ns {
					t.Errorf("backend %+v: %+v", k, b)
				}
			}
			for k, ns := range c.want.backend6 {
				if b, ok := tr.backends6[k]; !ok || b.NsIP != ns {
					t.Errorf("backend6 %v/%d: %+v", netip.AddrFrom16(k.ServiceIP), k.Index, b)
				}
			}
			for k, v := range c.want.senders {
				if tr.senders[k] != v {
					t.Errorf("sender %v: %v", k, tr.senders[k])
				}
			}
			for k, v := range c.want.senders6 {
				if tr.senders6[k] != v {
					t.Errorf("sender6 %v: %v", netip.AddrFrom16(k), netip.AddrFrom16(tr.senders6[k]))
				}
			}
			for _, k := range c.want.absent {
				if _, ok := tr.services[k]; ok {
					t.Errorf("service %v planned", netip.AddrFrom4(k))
				}
			}
			if c.name == "instance 1 on another node" {
				for _, ns := range []string{"10.18.0.3", "10.18.0.4", "10.18.0.5"} {
					if _, ok := tr.senders[a4(ns)]; ok {
						t.Errorf("%s, behind a round robin spanning nodes, planned as a sender", ns)
					}
				}
				if _, ok := tr.senders6[a16("fd00:18::2")]; !ok || len(tr.senders6) != 1 {
					t.Errorf("IPv6 senders: %v", tr.senders6)
				}
			}
			for _, k := range c.want.absent6 {
				if _, ok := tr.services6[k]; ok {
					t.Errorf("service6 %v planned", netip.AddrFrom16(k))
				}
			}
			if len(tr.services6) > 0 && len(tr.senders6) == 0 {
				t.Error("IPv6 services without IPv6 senders")
			}
		})
	}
}

// toEntry sorts service IPs by family and policy.
func TestToEntry(t *testing.T) {
	e := toEntry(tableEntries()[1])
	if e.rrIP != v6("10.30.0.1") || e.instIP != v6("10.30.0.10") || e.rrIP6 != v6("fdff:2000::1") || e.instIP6 != v6("fdff:2000::a") ||
		e.nsIP6 != v6("fd00:18::3") {
		t.Fatalf("%+v", e)
	}
}

// toEntry keeps whether the instance is on another node.
func TestToEntryRemote(t *testing.T) {
	if toEntry(module.ServiceEntry{Name: "app.ns.web.ns", Remote: true}).remote != true || toEntry(module.ServiceEntry{}).remote {
		t.Fatal("Remote not carried over")
	}
}

// With the kernel tunnel, an instance on another node is a backend reached
// through its node's tunnel: round robins span the nodes in the kernel,
// every local instance is a sender, the remote one's instance IPs are known
// as its node's, and the local ones are where tunnel datagrams may go. A
// node without an IPv4 address cannot be tunnelled to: as without the tunnel.
func TestPlanTunnel(t *testing.T) {
	a4 := func(s string) [4]byte { return netip.MustParseAddr(s).As4() }
	a16 := func(s string) [16]byte { return netip.MustParseAddr(s).As16() }
	remote := func(node string) []entry {
		es := entries()
		for i := range es {
			if es[i].name == "app.ns.web.ns" && es[i].instance == 1 {
				es[i].remote, es[i].node = true, netip.MustParseAddrPort(node)
			}
		}
		return es
	}
	tr := plan(remote("192.168.77.2:50103"), attachedAll(), true)
	node := a4("192.168.77.2")
	want := pxBackend{NsIP: a4("10.18.0.4"), NodeIP: node, NodePort: [2]byte{0xc3, 0xb7}}
	if s := tr.services[a4("10.30.0.1")]; s != (pxService{Kind: 0, Count: 3}) {
		t.Errorf("round robin spanning nodes: %+v", s)
	}
	for _, k := range []pxBackendKey{{ServiceIP: a4("10.30.0.1"), Index: 1}, {ServiceIP: a4("10.30.0.11")}} {
		if b := tr.backends[k]; b != want {
			t.Errorf("backend %v/%d: %+v, want %+v", netip.AddrFrom4(k.ServiceIP), k.Index, b, want)
		}
	}
	if b := tr.backends6[pxBackendKey6{ServiceIP: a16("fdff:2000::b")}]; b.NodeIP != node || b.NsIP != a16("fd00:18::4") || b.Ifindex != 0 {
		t.Errorf("IPv6 instance IP of the remote instance: %+v", b)
	}
	if b := tr.backends[pxBackendKey{ServiceIP: a4("10.30.0.1"), Index: 2}]; b.NodeIP != [4]byte{} || b.Ifindex != 15 {
		t.Errorf("local backend after the remote one: %+v", b)
	}
	if len(tr.senders) != 3 || tr.senders[a4("10.18.0.3")] != a4("10.30.0.10") {
		t.Errorf("senders: %v", tr.senders)
	}
	if _, ok := tr.senders[a4("10.18.0.4")]; ok {
		t.Error("the remote instance is a sender here")
	}
	if len(tr.remotes) != 1 || tr.remotes[a4("10.30.0.11")] != node || tr.remotes6[a16("fdff:2000::b")] != node {
		t.Errorf("remotes: %v %v", tr.remotes, tr.remotes6)
	}
	if _, ok := tr.locals[a4("10.18.0.4")]; ok || len(tr.locals) != 3 || tr.locals[a4("10.18.0.5")].Ifindex != 15 {
		t.Errorf("locals: %v", tr.locals)
	}
	if len(tr.locals6) != 3 || tr.locals6[a16("fd00:18::5")].Ifindex != 15 {
		t.Errorf("locals6: %v", tr.locals6)
	}
	if len(tr.peers) != 1 || !tr.peers[node] {
		t.Errorf("peers: %v", tr.peers)
	}

	for name, tr := range map[string]translations{
		"no tunnel":            plan(remote("192.168.77.2:50103"), attachedAll(), false),
		"an IPv6 node address": plan(remote("[fd00::2]:50103"), attachedAll(), true),
	} {
		if _, ok := tr.services[a4("10.30.0.1")]; ok || len(tr.remotes) != 0 || len(tr.peers) != 0 {
			t.Errorf("%s: the round robin spanning nodes planned, or remotes %v, peers %v", name, tr.remotes, tr.peers)
		}
		if _, ok := tr.senders[a4("10.18.0.3")]; ok {
			t.Errorf("%s: a local instance behind the user-space round robin is a sender", name)
		}
	}
}
