package ebpfmanager

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/table"
)

type entriesOnly []table.Entry

func (e entriesOnly) Entries() []table.Entry { return e }
func (e entriesOnly) Lookup(context.Context, table.Query) ([]table.Entry, error) {
	return e, nil
}

// Modules see an instance as remote when the table names another node
// for it; entries without a node are this node's.
func TestServiceTableRemote(t *testing.T) {
	self := netip.MustParseAddrPort("192.168.77.1:50103")
	ip := netip.MustParseAddr
	st := ServiceTable{Self: self, Source: entriesOnly{
		{ServiceName: "here", NodeIP: ip("192.168.77.1"), NodePort: 50103},
		{ServiceName: "here-no-port", NodeIP: ip("192.168.77.1")},
		{ServiceName: "no-node"},
		{ServiceName: "there", NodeIP: ip("192.168.77.2"), NodePort: 50103},
		{ServiceName: "other-port", NodeIP: ip("192.168.77.1"), NodePort: 50104},
		{ServiceName: "rr", NodeIP: ip("192.168.77.2"), ServiceIPs: []table.ServiceIP{{Policy: table.PolicyRoundRobin, Address: ip("10.30.9.1")}}},
	}}
	wantNode := map[string]netip.AddrPort{"there": netip.MustParseAddrPort("192.168.77.2:50103"),
		"other-port": netip.MustParseAddrPort("192.168.77.1:50104"), "rr": netip.MustParseAddrPort("192.168.77.2:50103")}
	want := map[string]bool{"here": false, "here-no-port": false, "no-node": false, "there": true, "other-port": true, "rr": true}
	for _, e := range st.Entries() {
		if e.Remote != want[e.Name] {
			t.Errorf("%s: Remote %v", e.Name, e.Remote)
		}
		if e.Remote != e.Node.IsValid() || (e.Remote && e.Node != wantNode[e.Name]) {
			t.Errorf("%s: Node %v", e.Name, e.Node)
		}
		if e.Name == "rr" && (len(e.ServiceIPs) != 1 || e.ServiceIPs[0].Policy != "round_robin") {
			t.Errorf("rr: service IPs %+v", e.ServiceIPs)
		}
	}
	if got := st.Lookup(ip("10.30.9.1")); len(got) != len(want) {
		t.Errorf("Lookup: %d entries", len(got))
	}
}

// ServicesChanged reaches every running instance whose module watches the
// table; a module's error names its instance.
func TestServicesChanged(t *testing.T) {
	h := newHarness(t, ModeTCX)
	a := h.load(t, "counter", 0)
	h.load(t, "dropper", 0)
	if err := h.m.ServicesChanged(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"counter", "dropper"} {
		if calls := strings.Join(h.p.mods[name][0].calls, ","); !strings.HasSuffix(calls, "ServicesChanged") {
			t.Errorf("%s: calls %s", name, calls)
		}
	}
	h.p.mods["counter"][0].failOn = "ServicesChanged"
	if err := h.m.ServicesChanged(); err == nil || !strings.Contains(err.Error(), a.ID) {
		t.Fatalf("a failing module: %v, want an error naming %s", err, a.ID)
	}
	h.p.mods["counter"][0].panicOn = "ServicesChanged"
	if err := h.m.ServicesChanged(); err == nil {
		t.Fatal("a panicking module: no error")
	}
	if info, err := h.m.Get(a.ID); err != nil || info.State != StateFailed {
		t.Fatalf("a module that panicked in ServicesChanged: %+v %v, want failed", info, err)
	}
}
