package netenv_test

import (
	"sort"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/oakestra/netmanager/node-net-manager/netenv"
	"github.com/oakestra/netmanager/test/nstest"
)

// Renumbering the bridge to the cluster's subnet keeps the gateway IPs
// and changes their prefix lengths, IPv6 (which knows an address by its IP
// alone) as well as IPv4: afterwards the bridge has exactly the new ones.
func TestSwapAddrsKeepsTheIPWithAnotherPrefix(t *testing.T) {
	ns := nstest.NewNetns(t, "nm-swap")
	ns.MustExec(t, "ip", "link", "add", "br0", "type", "bridge")
	parse := func(s ...string) []*netlink.Addr {
		var out []*netlink.Addr
		for _, a := range s {
			ad, err := netlink.ParseAddr(a)
			if err != nil {
				t.Fatal(err)
			}
			if ad.IP.To4() == nil {
				ad.Flags = 0x02 // IFA_F_NODAD
			}
			out = append(out, ad)
		}
		return out
	}
	old, neu := parse("10.18.1.1/24", "fd00:18:1::1/64"), parse("10.18.1.1/26", "fd00:18:1::1/120")
	var got []string
	err := ns.Do(func() error {
		l, err := netlink.LinkByName("br0")
		if err != nil {
			return err
		}
		for _, a := range old {
			if err := netlink.AddrAdd(l, a); err != nil {
				return err
			}
		}
		if err := netenv.SwapAddrs(l, old, neu); err != nil {
			return err
		}
		have, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		for _, a := range have {
			if a.Scope == int(netlink.SCOPE_UNIVERSE) {
				got = append(got, a.IPNet.String())
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if len(got) != 2 || got[0] != "10.18.1.1/26" || got[1] != "fd00:18:1::1/120" {
		t.Fatalf("the bridge has %v, want 10.18.1.1/26 and fd00:18:1::1/120", got)
	}
}
