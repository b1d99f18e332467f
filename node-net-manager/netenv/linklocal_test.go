package netenv

import (
	"net"
	"testing"
)

// The bridge's link-local address is the one the kernel would generate from
// its MAC (seen on a bridge with MAC 02:6e:0a:12:00:01 before address
// generation was turned off).
func TestLinkLocal(t *testing.T) {
	mac, _ := net.ParseMAC("02:6e:0a:12:00:01")
	if got := linkLocal(mac).String(); got != "fe80::6e:aff:fe12:1" {
		t.Fatalf("link-local of %s: %s", mac, got)
	}
	mac, _ = net.ParseMAC("3a:83:88:5c:44:07")
	if got := linkLocal(mac).String(); got != "fe80::3883:88ff:fe5c:4407" {
		t.Fatalf("link-local of %s: %s", mac, got)
	}
}
