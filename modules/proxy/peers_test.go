package main

import (
	"maps"
	"net/netip"
	"slices"
	"testing"
)

// peersHeld lists the nodes in the peers map.
func (td *tunDP) peersHeld(t *testing.T) []string {
	t.Helper()
	var out []string
	var k [4]byte
	var v []pxPeer
	it := td.coll.Maps["peers"].Iterate()
	for it.Next(&k, &v) {
		out = append(out, netip.AddrFrom4(k).String())
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// resync runs a sync as an attach or a table change does.
func (td *tunDP) resync(t *testing.T) {
	t.Helper()
	td.px.mu.Lock()
	defer td.px.mu.Unlock()
	if err := td.px.sync(); err != nil {
		t.Fatal(err)
	}
}

// A node keeps its place in the peers map while a session still points at
// it after the table lost its instances, and loses it with its last
// session. The session tables are read only when a peer would go: a sync
// that keeps every peer (here, a local instance detached and back) reads
// none.
func TestSessionsKeepTheirPeers(t *testing.T) {
	td := newTunDP(t)
	peer, lost := peerNode.Addr().String(), lostNode.Addr().String()
	if got := td.peersHeld(t); !slices.Equal(got, []string{lost, peer}) {
		t.Fatalf("peers at the start: %v", got)
	}
	flow := clientFlows(t)[0]
	if v, _ := td.fromService(t, flow.out); v != redirect {
		t.Fatalf("the client's flow to web's instance on %s was not tunnelled", peer)
	}

	scans := td.px.peerScans
	local := netip.MustParseAddr("10.18.0.5")
	l, ok := td.px.attached[local]
	if !ok {
		t.Fatalf("the fixture has no local instance %s: %v", local, slices.Collect(maps.Keys(td.px.attached)))
	}
	delete(td.px.attached, local)
	td.resync(t)
	td.px.attached[local] = l
	td.resync(t)
	if td.px.peerScans != scans {
		t.Errorf("syncs that kept every peer read the session tables %d times", td.px.peerScans-scans)
	}

	td.table.mu.Lock()
	var kept []int
	for i, e := range td.table.entries {
		if !(e.Remote && e.Node == peerNode) {
			kept = append(kept, i)
		}
	}
	all := td.table.entries
	td.table.entries = nil
	for _, i := range kept {
		td.table.entries = append(td.table.entries, all[i])
	}
	td.table.mu.Unlock()
	td.resync(t)
	if td.px.peerScans == scans {
		t.Error("a sync that drops a peer from the plan did not read the sessions")
	}
	if got := td.peersHeld(t); !slices.Equal(got, []string{lost, peer}) {
		t.Fatalf("with a session to %s left, after its instances left the table: peers %v", peer, got)
	}
	td.px.mu.Lock()
	err := td.px.dropTunnelSessions()
	td.px.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	td.resync(t)
	if got := td.peersHeld(t); !slices.Equal(got, []string{lost}) {
		t.Fatalf("after its last session: peers %v, want only %s", got, lost)
	}
}
