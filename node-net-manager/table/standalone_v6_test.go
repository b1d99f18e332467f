package table

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/ipam"
)

func newDualTable(t *testing.T, v6 string) *Standalone {
	t.Helper()
	s, err := NewStandalone(Options{Range: netip.MustParsePrefix("10.30.0.0/16"), RangeV6: netip.MustParsePrefix(v6)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func addDual(t *testing.T, s *Standalone, name string, inst int, n byte) Entry {
	t.Helper()
	e, err := s.Add(Instance{ServiceName: name, Instance: inst, NsIP: netip.AddrFrom4([4]byte{10, 18, 0, n}),
		NsIPv6: netip.AddrFrom16([16]byte{0xfd, 0, 0, 0x18, 15: n})})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// serviceIPs returns an entry's addresses by policy and family.
func serviceIPs(e Entry) (rr4, inst4, rr6, inst6 netip.Addr) {
	for _, s := range e.ServiceIPs {
		switch {
		case s.Policy == PolicyRoundRobin && s.Address.Is4():
			rr4 = s.Address
		case s.Policy == PolicyInstance && s.Address.Is4():
			inst4 = s.Address
		case s.Policy == PolicyRoundRobin && s.Address.Is6():
			rr6 = s.Address
		case s.Policy == PolicyInstance && s.Address.Is6():
			inst6 = s.Address
		}
	}
	return
}

func TestIPv6ServiceIPs(t *testing.T) {
	s := newDualTable(t, "fdff:2000::/64")
	a := addDual(t, s, "app.ns.web.ns", 0, 2)
	b := addDual(t, s, "app.ns.web.ns", 1, 3)
	rr4, inst4, rr6, inst6 := serviceIPs(a)
	if !rr4.Is4() || !inst4.Is4() || !rr6.Is6() || !inst6.Is6() || len(a.ServiceIPs) != 4 {
		t.Fatalf("want a round-robin and an instance IP per family, got %+v", a.ServiceIPs)
	}
	if a.ServiceIPs[0].Address != rr4 {
		t.Fatalf("the IPv4 round-robin IP must come first (ServiceIP(policy) returns it): %+v", a.ServiceIPs)
	}
	if !netip.MustParsePrefix("fdff:2000::/64").Contains(rr6) {
		t.Fatalf("%s is outside the IPv6 range", rr6)
	}
	brr4, binst4, brr6, binst6 := serviceIPs(b)
	if brr4 != rr4 || brr6 != rr6 || binst6 == inst6 || binst4 == inst4 {
		t.Fatalf("instances share the round-robin IPs and own their instance IPs: %+v %+v", a.ServiceIPs, b.ServiceIPs)
	}
	if got := lookupIP(t, s, rr6); len(got) != 2 {
		t.Fatalf("IPv6 round robin resolves to %+v", got)
	}
	for _, ip := range []netip.Addr{inst6, a.NsIPv6} {
		if got := lookupIP(t, s, ip); len(got) != 1 || got[0].Instance != 0 {
			t.Fatalf("%s resolves to %+v", ip, got)
		}
	}
	if err := s.Remove("app.ns.web.ns", 0); err != nil {
		t.Fatal(err)
	}
	if got := lookupIP(t, s, inst6); len(got) != 0 {
		t.Fatalf("removed instance's IPv6 instance IP still resolves: %+v", got)
	}
	if err := s.Remove("app.ns.web.ns", 1); err != nil {
		t.Fatal(err)
	}
	if got := lookupIP(t, s, rr6); len(got) != 0 {
		t.Fatalf("the IPv6 round-robin IP outlived the service: %+v", got)
	}
	for _, p := range s.pools {
		if p.InUse() != 0 {
			t.Fatalf("pool %s still holds %d addresses", p.Prefix(), p.InUse())
		}
	}
}

func TestAddRollsBackWhenIPv6RunsOut(t *testing.T) {
	s := newDualTable(t, "fdff:2000::/126") // 3 usable addresses: one service, two instances
	addDual(t, s, "app.ns.web.ns", 0, 2)
	addDual(t, s, "app.ns.web.ns", 1, 3)
	_, err := s.Add(Instance{ServiceName: "app.ns.db.ns", NsIP: netip.MustParseAddr("10.18.0.4")})
	if !errors.Is(err, ipam.ErrExhausted) {
		t.Fatalf("want exhausted, got %v", err)
	}
	if got := s.pools[0].InUse(); got != 3 {
		t.Fatalf("a failed add left IPv4 addresses taken: %d in use, want 3", got)
	}
	if len(s.Entries()) != 2 {
		t.Fatalf("a failed add left an entry: %+v", s.Entries())
	}
}

func TestRestoreIPv6(t *testing.T) {
	old := newDualTable(t, "fdff:2000::/64")
	a := addDual(t, old, "app.ns.web.ns", 0, 2)
	fresh := newDualTable(t, "fdff:2000::/64")
	got, err := fresh.Restore(Instance{ServiceName: a.ServiceName, NsIP: a.NsIP, NsIPv6: a.NsIPv6}, a.ServiceIPs)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, rr6, inst6 := serviceIPs(got); rr6 != a.ServiceIPs[2].Address || inst6 != a.ServiceIPs[3].Address {
		t.Fatalf("restored %+v, had %+v", got.ServiceIPs, a.ServiceIPs)
	}
	// A record from a run without IPv6 service IPs gets fresh ones.
	v4only := newTable(t, "10.30.0.0/16")
	b := add(t, v4only, "app.ns.db.ns", 0, "10.18.0.9")
	got, err = newDualTable(t, "fdff:2000::/64").Restore(Instance{ServiceName: b.ServiceName, NsIP: b.NsIP}, b.ServiceIPs)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, rr6, inst6 := serviceIPs(got); !rr6.Is6() || !inst6.Is6() || rr6 == inst6 {
		t.Fatalf("want fresh IPv6 service IPs, got %+v", got.ServiceIPs)
	}
	// A table without IPv6 drops a record's IPv6 addresses.
	got, err = newTable(t, "10.30.0.0/16").Restore(Instance{ServiceName: a.ServiceName, NsIP: a.NsIP}, a.ServiceIPs)
	if err != nil || len(got.ServiceIPs) != 2 {
		t.Fatalf("got %+v, %v", got.ServiceIPs, err)
	}
}

func TestNewStandaloneChecksFamilies(t *testing.T) {
	if _, err := NewStandalone(Options{Range: netip.MustParsePrefix("10.30.0.0/16"), RangeV6: netip.MustParsePrefix("10.31.0.0/16")}); err == nil {
		t.Fatal("an IPv4 prefix as the IPv6 range was accepted")
	}
	if _, err := NewStandalone(Options{Range: netip.MustParsePrefix("fdff::/64")}); err == nil {
		t.Fatal("an IPv6 prefix as the IPv4 range was accepted")
	}
}
