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
			tr := plan(c.entries(), c.attached())
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
