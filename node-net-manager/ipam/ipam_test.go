package ipam

import (
	"errors"
	"net/netip"
	"testing"
)

func mustPool(t *testing.T, p string, reserved ...string) *Pool {
	t.Helper()
	var rs []netip.Addr
	for _, r := range reserved {
		rs = append(rs, netip.MustParseAddr(r))
	}
	pool, err := NewPool(netip.MustParsePrefix(p), rs...)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

func TestAllocateSkipsNetworkBroadcastAndReserved(t *testing.T) {
	p := mustPool(t, "10.18.0.0/29", "10.18.0.1")
	var got []string
	for {
		a, err := p.Allocate()
		if errors.Is(err, ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.String())
	}
	want := []string{"10.18.0.2", "10.18.0.3", "10.18.0.4", "10.18.0.5", "10.18.0.6"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestNextFitDoesNotReuseAtOnce(t *testing.T) {
	p := mustPool(t, "10.18.0.0/24", "10.18.0.1")
	a, _ := p.Allocate()
	b, _ := p.Allocate()
	p.Release(a)
	c, _ := p.Allocate()
	if c == a || c == b {
		t.Fatalf("released %s came back at once as %s", a, c)
	}
	if c.String() != "10.18.0.4" {
		t.Fatalf("got %s, want 10.18.0.4", c)
	}
}

func TestWrapAroundReusesReleased(t *testing.T) {
	p := mustPool(t, "10.0.0.0/30") // usable .1 .2
	a, _ := p.Allocate()
	if _, err := p.Allocate(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Allocate(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("want exhausted, got %v", err)
	}
	p.Release(a)
	c, err := p.Allocate()
	if err != nil || c != a {
		t.Fatalf("got %s, %v; want %s", c, err, a)
	}
}

func TestClaim(t *testing.T) {
	p := mustPool(t, "10.18.0.0/24", "10.18.0.1")
	cases := []struct {
		addr string
		ok   bool
	}{
		{"10.18.0.7", true},
		{"10.18.0.7", false},   // twice
		{"10.18.0.1", false},   // reserved
		{"10.18.0.0", false},   // network
		{"10.18.0.255", false}, // broadcast
		{"10.19.0.7", false},   // outside
	}
	for _, c := range cases {
		err := p.Claim(netip.MustParseAddr(c.addr))
		if (err == nil) != c.ok {
			t.Errorf("Claim(%s) err=%v, want ok=%v", c.addr, err, c.ok)
		}
	}
	if p.InUse() != 1 {
		t.Fatalf("InUse=%d, want 1", p.InUse())
	}
}

func TestPair(t *testing.T) {
	v4 := netip.MustParsePrefix("10.18.0.0/24")
	v6 := netip.MustParsePrefix("fd00:18::/64")
	got, err := Pair(v4, netip.MustParseAddr("10.18.0.42"), v6)
	if err != nil || got.String() != "fd00:18::2a" {
		t.Fatalf("Pair = %s, %v; want fd00:18::2a", got, err)
	}
	if _, err := Pair(v4, netip.MustParseAddr("10.19.0.1"), v6); err == nil {
		t.Fatal("want error for address outside prefix")
	}
	if _, err := Pair(netip.MustParsePrefix("10.0.0.0/16"), netip.MustParseAddr("10.0.1.0"), netip.MustParsePrefix("fd00::/120")); err == nil {
		t.Fatal("want error when offset does not fit")
	}
}

func TestIPv6PoolHasNoBroadcastHole(t *testing.T) {
	p := mustPool(t, "fd00::/126")
	var n int
	for {
		if _, err := p.Allocate(); err != nil {
			break
		}
		n++
	}
	if n != 3 {
		t.Fatalf("allocated %d from a /126, want 3", n)
	}
}
