package cluster

import (
	"net/netip"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/table"
)

// testRanges are the default service ranges.
var testRanges = []netip.Prefix{netip.MustParsePrefix("10.30.0.0/16"), netip.MustParsePrefix("fdff::/16")}

// The cluster's answer becomes table entries as the reference reads it:
// RR and instance_ip in both families, any other type naming one instance,
// and an instance not deployed yet (no namespace IP or node) left out.
func TestEntriesFromTheClusterAnswer(t *testing.T) {
	tb := NewTable(TableOptions{Ranges: testRanges})
	tb.store(TableResult{AppName: "app.ns.web.ns", InstanceList: []Instance{
		{InstanceNumber: 0, NamespaceIP: "10.18.2.2", NamespaceIPv6: "fd00:18:2::2", HostIP: "192.0.2.2", HostPort: 50103,
			ServiceIP: []ServiceIP{{IPType: "RR", Address: "10.30.9.1", AddressV6: "fdff:2000::9:1"}, {IPType: "instance_ip", Address: "10.30.9.2", AddressV6: "fdff:2000::9:2"}}},
		{InstanceNumber: 1, NamespaceIP: "10.18.3.2", HostIP: "192.0.2.3", HostPort: 50103,
			ServiceIP: []ServiceIP{{IPType: "RR", Address: "10.30.9.1"}, {IPType: "InstanceNumber", Address: "10.30.9.3"}}},
		{InstanceNumber: 2, NamespaceIP: "", HostIP: "192.0.2.4"},
		{InstanceNumber: 3, NamespaceIP: "10.18.4.2", HostIP: ""},
	}}, "")
	ip := netip.MustParseAddr
	for _, c := range []struct {
		q    table.Query
		want []int // instance numbers
	}{
		{table.Query{IP: ip("10.30.9.1")}, []int{0, 1}},
		{table.Query{IP: ip("fdff:2000::9:1")}, []int{0}},
		{table.Query{IP: ip("10.30.9.2")}, []int{0}},
		{table.Query{IP: ip("10.30.9.3")}, []int{1}},
		{table.Query{IP: ip("10.18.3.2")}, []int{1}},
		{table.Query{IP: ip("fd00:18:2::2")}, []int{0}},
		{table.Query{IP: ip("10.30.9.9")}, nil},
		{table.Query{ServiceName: "app.ns.web.ns"}, []int{0, 1}},
	} {
		got := tb.cached(c.q)
		var nums []int
		for _, e := range got {
			nums = append(nums, e.Instance)
		}
		if len(nums) != len(c.want) || (len(nums) > 0 && (nums[0] != c.want[0] || nums[len(nums)-1] != c.want[len(c.want)-1])) {
			t.Errorf("%+v: instances %v, want %v", c.q, nums, c.want)
		}
	}
	e := tb.cached(table.Query{IP: ip("10.30.9.2")})[0]
	if e.NodeIP != ip("192.0.2.2") || e.NodePort != 50103 || e.NsIPv6 != ip("fd00:18:2::2") {
		t.Fatalf("entry: %+v", e)
	}
	if a, ok := e.ServiceIPOf(table.PolicyInstance, true); !ok || a != ip("fdff:2000::9:2") {
		t.Fatalf("instance IPv6: %v %v", a, ok)
	}
}

// OnChange runs when an answer changes a job's cached entries, not when the
// cluster repeats itself.
func TestTableOnChange(t *testing.T) {
	changes := 0
	tb := NewTable(TableOptions{Ranges: testRanges, OnChange: func() { changes++ }})
	r := TableResult{AppName: "app.ns.web.ns", InstanceList: []Instance{
		{InstanceNumber: 0, NamespaceIP: "10.18.2.2", HostIP: "192.0.2.2", HostPort: 50103, ServiceIP: []ServiceIP{{IPType: "RR", Address: "10.30.9.1"}}}}}
	tb.store(r, "")
	tb.store(r, "")
	if changes != 1 {
		t.Fatalf("%d changes after one answer given twice", changes)
	}
	r.InstanceList = append(r.InstanceList, Instance{InstanceNumber: 1, NamespaceIP: "10.18.3.2", HostIP: "192.0.2.3", HostPort: 50103})
	tb.store(r, "")
	r.InstanceList[0].ServiceIP[0].Address = "10.30.9.7"
	tb.store(r, "")
	if changes != 3 {
		t.Fatalf("%d changes, want 3", changes)
	}
}
