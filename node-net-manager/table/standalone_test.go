package table

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

func newTable(t *testing.T, rng string) *Standalone {
	t.Helper()
	s, err := NewStandalone(Options{Range: netip.MustParsePrefix(rng), Node: Node{IP: netip.MustParseAddr("192.0.2.1"), Port: 50103}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func add(t *testing.T, s *Standalone, name string, inst int, ns string) Entry {
	t.Helper()
	e, err := s.Add(Instance{ServiceName: name, Instance: inst, NsIP: netip.MustParseAddr(ns)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func lookupIP(t *testing.T, s *Standalone, ip netip.Addr) []Entry {
	t.Helper()
	es, err := s.Lookup(context.Background(), Query{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestInstancesShareRoundRobinIP(t *testing.T) {
	s := newTable(t, "10.30.0.0/16")
	a := add(t, s, "app.ns.web.ns", 0, "10.18.0.2")
	b := add(t, s, "app.ns.web.ns", 1, "10.18.0.3")
	c := add(t, s, "app.ns.db.ns", 0, "10.18.0.4")
	rrA, _ := a.ServiceIP(PolicyRoundRobin)
	rrB, _ := b.ServiceIP(PolicyRoundRobin)
	rrC, _ := c.ServiceIP(PolicyRoundRobin)
	if rrA != rrB || rrA == rrC {
		t.Fatalf("round robin IPs: web %s/%s, db %s", rrA, rrB, rrC)
	}
	iA, _ := a.ServiceIP(PolicyInstance)
	iB, _ := b.ServiceIP(PolicyInstance)
	if iA == iB || iA == rrA || !netip.MustParsePrefix("10.30.0.0/16").Contains(iA) {
		t.Fatalf("instance IPs %s %s (rr %s)", iA, iB, rrA)
	}
	if a.NodePort != 50103 || a.NodeIP.String() != "192.0.2.1" {
		t.Fatalf("node identity not recorded: %+v", a)
	}
}

func TestLookups(t *testing.T) {
	s := newTable(t, "10.30.0.0/16")
	a := add(t, s, "app.ns.web.ns", 0, "10.18.0.2")
	add(t, s, "app.ns.web.ns", 1, "10.18.0.3")
	rr, _ := a.ServiceIP(PolicyRoundRobin)
	inst, _ := a.ServiceIP(PolicyInstance)

	cases := []struct {
		name  string
		ip    netip.Addr
		insts []int
	}{
		{"round robin IP gives every instance", rr, []int{0, 1}},
		{"instance IP gives one", inst, []int{0}},
		{"namespace IP gives its instance", netip.MustParseAddr("10.18.0.3"), []int{1}},
		{"unknown IP gives nothing", netip.MustParseAddr("10.30.9.9"), nil},
	}
	for _, c := range cases {
		got := lookupIP(t, s, c.ip)
		if len(got) != len(c.insts) {
			t.Errorf("%s: got %d entries, want %d", c.name, len(got), len(c.insts))
			continue
		}
		for i, e := range got {
			if e.Instance != c.insts[i] {
				t.Errorf("%s: entry %d is instance %d, want %d", c.name, i, e.Instance, c.insts[i])
			}
		}
	}
	byName, _ := s.Lookup(context.Background(), Query{ServiceName: "app.ns.web.ns"})
	if len(byName) != 2 {
		t.Fatalf("by name: %d entries", len(byName))
	}
	if _, err := s.Lookup(context.Background(), Query{}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("empty query: %v", err)
	}
	if _, err := s.Lookup(context.Background(), Query{ServiceName: "x", IP: rr}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("double query: %v", err)
	}
}

func TestRemoveFreesAddresses(t *testing.T) {
	s := newTable(t, "10.30.0.0/16")
	a := add(t, s, "app.ns.web.ns", 0, "10.18.0.2")
	b := add(t, s, "app.ns.web.ns", 1, "10.18.0.3")
	rr, _ := a.ServiceIP(PolicyRoundRobin)
	if err := s.Remove("app.ns.web.ns", 0); err != nil {
		t.Fatal(err)
	}
	if got := lookupIP(t, s, rr); len(got) != 1 || got[0].Instance != 1 {
		t.Fatalf("rr after removing instance 0: %+v", got)
	}
	if got := lookupIP(t, s, netip.MustParseAddr("10.18.0.2")); len(got) != 0 {
		t.Fatalf("ns IP of removed instance still resolves: %+v", got)
	}
	if err := s.Remove("app.ns.web.ns", 0); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	if err := s.Remove("app.ns.web.ns", b.Instance); err != nil {
		t.Fatal(err)
	}
	if got := lookupIP(t, s, rr); len(got) != 0 {
		t.Fatalf("rr still resolves after last instance: %+v", got)
	}
	if s.pools[0].InUse() != 0 || len(s.byIP) != 0 || len(s.Entries()) != 0 {
		t.Fatalf("leftovers: pool %d, byIP %d", s.pools[0].InUse(), len(s.byIP))
	}
}

func TestDuplicateAndExhaustion(t *testing.T) {
	s := newTable(t, "10.30.0.0/30") // two usable addresses: one rr + one instance
	add(t, s, "app.ns.web.ns", 0, "10.18.0.2")
	if _, err := s.Add(Instance{ServiceName: "app.ns.web.ns", Instance: 0, NsIP: netip.MustParseAddr("10.18.0.9")}); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := s.Add(Instance{ServiceName: "app.ns.db.ns", Instance: 0, NsIP: netip.MustParseAddr("10.18.0.3")}); err == nil {
		t.Fatal("want exhaustion error")
	}
	if s.pools[0].InUse() != 2 {
		t.Fatalf("failed add leaked addresses: in use %d", s.pools[0].InUse())
	}
}

func TestEntriesAreCopies(t *testing.T) {
	s := newTable(t, "10.30.0.0/16")
	add(t, s, "app.ns.web.ns", 0, "10.18.0.2")
	es := s.Entries()
	es[0].ServiceIPs[0].Address = netip.MustParseAddr("1.2.3.4")
	if s.Entries()[0].ServiceIPs[0].Address.String() == "1.2.3.4" {
		t.Fatal("Entries exposes internal state")
	}
}

func TestRestore(t *testing.T) {
	s := newTable(t, "10.30.0.0/16")
	a := add(t, s, "app.ns.web.ns", 0, "10.18.0.2")
	b := add(t, s, "app.ns.web.ns", 1, "10.18.0.3")
	fresh := newTable(t, "10.30.0.0/16")
	for _, e := range []Entry{b, a} {
		if _, err := fresh.Restore(Instance{ServiceName: e.ServiceName, Instance: e.Instance, NsIP: e.NsIP}, e.ServiceIPs); err != nil {
			t.Fatal(err)
		}
	}
	rr, _ := a.ServiceIP(PolicyRoundRobin)
	if got := lookupIP(t, fresh, rr); len(got) != 2 {
		t.Fatalf("restored round robin: %+v", got)
	}
	// New allocations do not reuse restored addresses.
	c := add(t, fresh, "app.ns.db.ns", 0, "10.18.0.4")
	for _, ip := range c.ServiceIPs {
		for _, old := range append(a.ServiceIPs, b.ServiceIPs...) {
			if ip.Address == old.Address {
				t.Fatalf("%s handed out again", ip.Address)
			}
		}
	}
	if _, err := fresh.Restore(Instance{ServiceName: "app.ns.web.ns", Instance: 0, NsIP: a.NsIP}, a.ServiceIPs); err == nil {
		t.Fatal("restoring an instance twice was accepted")
	}
	if _, err := fresh.Restore(Instance{ServiceName: "x.y.z.w"}, nil); err == nil {
		t.Fatal("restore without service IPs was accepted")
	}
}
