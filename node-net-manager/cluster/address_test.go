package cluster_test

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/node-net-manager/events"
	"github.com/oakestra/netmanager/test/clusterstub"
)

// The node's address moves: before registration nothing is sent; once
// registered, each instance is reported at the new address over
// service/address-changed (service/deployed's fields, status and
// namespace addresses empty), the cluster records it, and later reports
// carry it.
func TestLinkAddressChanged(t *testing.T) {
	addr := freeAddr(t)
	clusterstub.StartBroker(t, nil, addr)
	m := clusterstub.NewManager(t, addr, cluster.SubnetResult{Address: "10.18.3.0"})
	running := []events.Service{svc("app.ns.a.ns", 0, "10.18.0.2", "fd00:18::2"), svc("app.ns.b.ns", 1, "10.18.0.3", "")}
	first := netip.MustParseAddrPort("192.0.2.10:50103")
	l := cluster.NewLink(cluster.LinkOptions{Services: func() []events.Service { return running }, Node: first})
	defer l.Close()
	early := netip.MustParseAddrPort("192.0.2.11:50103")
	if err := l.SetNode(early); err != nil || l.Node() != early {
		t.Fatalf("before registration: %v, node %v", err, l.Node())
	}
	if _, err := l.Register(ctx(t), "n1", addr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the instances reported", func() bool { return len(m.Instances("app.ns.b.ns")) == 1 })
	if in := m.Instances("app.ns.a.ns")[0]; in.HostIP != "192.0.2.11" {
		t.Fatalf("registered at %s, want the address set before", in.HostIP)
	}
	moved := netip.MustParseAddrPort("192.0.2.20:50103")
	if err := l.SetNode(moved); err != nil {
		t.Fatal(err)
	}
	if err := l.SetNode(moved); err != nil { // the same again: nothing sent
		t.Fatal(err)
	}
	waitFor(t, "the cluster records the new address", func() bool {
		a, b := m.Instances("app.ns.a.ns"), m.Instances("app.ns.b.ns")
		return len(a) == 1 && len(b) == 1 && a[0].HostIP == "192.0.2.20" && b[0].HostIP == "192.0.2.20"
	})
	// The reconnect's own announcements (service/deployed) carry the new
	// address too and may be handled before the address-changed messages
	// arrive: wait for those.
	waitFor(t, "the address-changed messages", func() bool { return len(m.Messages("service/address-changed")) >= 2 })
	msgs := m.Messages("service/address-changed")
	if len(msgs) != 2 {
		t.Fatalf("%d service/address-changed messages, want one per instance", len(msgs))
	}
	var got map[string]any
	if err := json.Unmarshal(msgs[0].Payload, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"appname": "app.ns.a.ns", "status": "", "instance_number": float64(0), "nsip": "", "nsipv6": "",
		"host_ip": "192.0.2.20", "host_port": "50103"}
	if len(got) != len(want) {
		t.Fatalf("message %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("message %v, want %v", got, want)
		}
	}
	if msgs[0].Node != "n1" {
		t.Fatalf("sent as %q", msgs[0].Node)
	}
}
