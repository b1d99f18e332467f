package cluster

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

const testJob = "app.ns.web.ns"

var (
	testSelf    = netip.MustParseAddrPort("192.0.2.10:50103")
	testSubnets = []netip.Prefix{netip.MustParsePrefix("10.18.1.0/26"), netip.MustParsePrefix("fc00::/120")}
	testView    = View{Ranges: testRanges, Subnets: testSubnets, Self: testSelf,
		Runs: func(job string, ns netip.Addr) bool { return job == testJob && ns == netip.MustParseAddr("10.18.1.2") }}
)

// goodInstance is an instance on another node that passes every check.
func goodInstance() Instance {
	return Instance{InstanceNumber: 0, NamespaceIP: "10.18.2.2", NamespaceIPv6: "fc00::102", HostIP: "192.0.2.20", HostPort: 50103,
		ServiceIP: []ServiceIP{{IPType: "RR", Address: "10.30.0.1", AddressV6: "fdff:2000::1"}, {IPType: "instance_ip", Address: "10.30.0.2", AddressV6: "fdff::2"}}}
}

func goodAnswer() TableResult {
	return TableResult{AppName: testJob, QueryKey: testJob, InstanceList: []Instance{goodInstance()}}
}

// Every fault of an answer rejects it whole, for its reason.
func TestCheckAnswerRejects(t *testing.T) {
	long := strings.Repeat("a", MaxNameLen+1)
	many := func(n int) []Instance {
		out := make([]Instance, n)
		for i := range out {
			out[i] = goodInstance()
		}
		return out
	}
	for _, c := range []struct {
		name   string
		edit   func(r *TableResult, in *Instance)
		asked  string
		reason string
	}{
		{"app_name not a service name", func(r *TableResult, _ *Instance) { r.AppName = "jobs/#" }, "", ReasonJob},
		{"app_name with three parts", func(r *TableResult, _ *Instance) { r.AppName = "app.ns.web" }, "", ReasonJob},
		{"app_name not the job asked about", func(*TableResult, *Instance) {}, "app.ns.other.ns", ReasonJob},
		{"app_name too long", func(r *TableResult, _ *Instance) { r.AppName = long }, "", ReasonSize},
		{"query_key too long", func(r *TableResult, _ *Instance) { r.QueryKey = long }, "", ReasonSize},
		{"too many instances", func(r *TableResult, _ *Instance) { r.InstanceList = many(MaxInstances + 1) }, "", ReasonSize},
		{"too many service IPs", func(_ *TableResult, in *Instance) {
			in.ServiceIP = make([]ServiceIP, MaxServiceIPs+1)
		}, "", ReasonSize},
		{"an address too long", func(_ *TableResult, in *Instance) { in.HostIP = strings.Repeat("1", MaxAddrLen+1) }, "", ReasonSize},
		{"IpType too long", func(_ *TableResult, in *Instance) { in.ServiceIP[0].IPType = strings.Repeat("R", MaxAddrLen+1) }, "", ReasonSize},
		{"namespace_ip not an address", func(_ *TableResult, in *Instance) { in.NamespaceIP = "<nil>" }, "", ReasonAddress},
		{"namespace_ip IPv6", func(_ *TableResult, in *Instance) { in.NamespaceIP = "fc00::202" }, "", ReasonAddress},
		{"namespace_ip_v6 IPv4", func(_ *TableResult, in *Instance) { in.NamespaceIPv6 = "10.18.2.3" }, "", ReasonAddress},
		{"namespace_ip_v6 not an address", func(_ *TableResult, in *Instance) { in.NamespaceIPv6 = "x" }, "", ReasonAddress},
		{"host_ip not an address", func(_ *TableResult, in *Instance) { in.HostIP = "node-2" }, "", ReasonAddress},
		{"host_ip with a zone", func(_ *TableResult, in *Instance) { in.HostIP = "fe80::1%eth0" }, "", ReasonAddress},
		{"host_ip IPv4-mapped", func(_ *TableResult, in *Instance) { in.HostIP = "::ffff:127.0.0.1" }, "", ReasonAddress},
		{"Address IPv6", func(_ *TableResult, in *Instance) { in.ServiceIP[0].Address = "fdff:2000::1" }, "", ReasonAddress},
		{"Address_v6 IPv4", func(_ *TableResult, in *Instance) { in.ServiceIP[0].AddressV6 = "10.30.0.1" }, "", ReasonAddress},
		{"Address not an address", func(_ *TableResult, in *Instance) { in.ServiceIP[1].Address = "10.30.0" }, "", ReasonAddress},
		{"Address outside the range", func(_ *TableResult, in *Instance) { in.ServiceIP[0].Address = "192.0.2.99" }, "", ReasonServiceIP},
		{"Address_v6 outside the range", func(_ *TableResult, in *Instance) { in.ServiceIP[1].AddressV6 = "2001:db8::1" }, "", ReasonServiceIP},
		{"Address in this node's subnet", func(_ *TableResult, in *Instance) { in.ServiceIP[1].Address = "10.18.1.2" }, "", ReasonServiceIP},
		{"namespace_ip in the service range", func(_ *TableResult, in *Instance) { in.NamespaceIP = "10.30.0.9" }, "", ReasonNamespaceIP},
		{"namespace_ip_v6 in the service range", func(_ *TableResult, in *Instance) { in.NamespaceIPv6 = "fdff::9" }, "", ReasonNamespaceIP},
		{"namespace_ip loopback", func(_ *TableResult, in *Instance) { in.NamespaceIP = "127.0.0.1" }, "", ReasonNamespaceIP},
		{"namespace_ip multicast", func(_ *TableResult, in *Instance) { in.NamespaceIP = "224.0.0.1" }, "", ReasonNamespaceIP},
		{"namespace_ip_v6 unspecified", func(_ *TableResult, in *Instance) { in.NamespaceIPv6 = "::" }, "", ReasonNamespaceIP},
		{"host_ip loopback", func(_ *TableResult, in *Instance) { in.HostIP = "127.0.0.1" }, "", ReasonHost},
		{"host_ip IPv6 loopback", func(_ *TableResult, in *Instance) { in.HostIP = "::1" }, "", ReasonHost},
		{"host_ip multicast", func(_ *TableResult, in *Instance) { in.HostIP = "ff02::1" }, "", ReasonHost},
		{"host_ip unspecified", func(_ *TableResult, in *Instance) { in.HostIP = "0.0.0.0" }, "", ReasonHost},
		{"host_ip broadcast", func(_ *TableResult, in *Instance) { in.HostIP = "255.255.255.255" }, "", ReasonHost},
		{"host_port 0", func(_ *TableResult, in *Instance) { in.HostPort = 0 }, "", ReasonHost},
		{"host_port too big", func(_ *TableResult, in *Instance) { in.HostPort = 65536 }, "", ReasonHost},
		{"host_port negative", func(_ *TableResult, in *Instance) { in.HostPort = -1 }, "", ReasonHost},
		{"another node in this node's subnet", func(_ *TableResult, in *Instance) { in.NamespaceIP = "10.18.1.7" }, "", ReasonSubnet},
		{"another node in this node's IPv6 subnet", func(_ *TableResult, in *Instance) { in.NamespaceIPv6 = "fc00::7" }, "", ReasonSubnet},
		{"another port of this host in this node's subnet", func(_ *TableResult, in *Instance) {
			in.HostIP, in.HostPort, in.NamespaceIP = "192.0.2.10", 50104, "10.18.1.2"
		}, "", ReasonSubnet},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := goodAnswer()
			in := goodInstance()
			c.edit(&r, &in)
			if len(r.InstanceList) == 1 {
				r.InstanceList = []Instance{goodInstance(), in}
			}
			es, _, err := CheckAnswer(r, c.asked, testView)
			var ae *AnswerError
			if !errors.As(err, &ae) || ae.Reason != c.reason || !errors.Is(err, errdefs.ErrInvalid) || es != nil {
				t.Fatalf("CheckAnswer: %v entries, %v; want a rejection for %s", len(es), err, c.reason)
			}
			t.Log(err)
		})
	}
}

// What passes: the entries as the data planes read them, instances not
// deployed yet and those placed on this node that it does not run left out,
// a service IP of a family with no range (IPv6 off) dropped, an answer
// naming no job empty.
func TestCheckAnswerAccepts(t *testing.T) {
	ip := netip.MustParseAddr
	r := goodAnswer()
	mine := Instance{InstanceNumber: 1, NamespaceIP: "10.18.1.2", HostIP: "192.0.2.10", HostPort: 50103,
		ServiceIP: []ServiceIP{{IPType: "Closest", Address: "10.30.0.1"}}}
	gone := mine
	gone.InstanceNumber, gone.NamespaceIP = 2, "10.18.1.3"
	notYet := Instance{InstanceNumber: 3, HostIP: "192.0.2.30", HostPort: 50103}
	r.InstanceList = append(r.InstanceList, mine, gone, notYet)
	es, leftOut, err := CheckAnswer(r, testJob, testView)
	if err != nil || leftOut != 1 || len(es) != 2 {
		t.Fatalf("CheckAnswer: %d entries, %d left out, %v", len(es), leftOut, err)
	}
	want := table.Entry{ServiceName: testJob, Instance: 0, NsIP: ip("10.18.2.2"), NsIPv6: ip("fc00::102"), NodeIP: ip("192.0.2.20"), NodePort: 50103,
		ServiceIPs: []table.ServiceIP{{Policy: table.PolicyRoundRobin, Address: ip("10.30.0.1")}, {Policy: table.PolicyRoundRobin, Address: ip("fdff:2000::1")},
			{Policy: table.PolicyInstance, Address: ip("10.30.0.2")}, {Policy: table.PolicyInstance, Address: ip("fdff::2")}}}
	if !sameEntry(es[0], want) || es[1].Instance != 1 || es[1].ServiceIPs[0].Policy != table.PolicyClosest {
		t.Fatalf("entries %+v", es)
	}
	v4only := testView
	v4only.Ranges = testRanges[:1]
	if es, _, err := CheckAnswer(goodAnswer(), "", v4only); err != nil || len(es[0].ServiceIPs) != 2 || !es[0].ServiceIPs[1].Address.Is4() {
		t.Fatalf("IPv6 off: %+v %v", es, err)
	}
	if es, _, err := CheckAnswer(TableResult{QueryKey: "10.30.9.9"}, "", testView); err != nil || es != nil {
		t.Fatalf("no job: %+v %v", es, err)
	}
	// Without Self (unknown) the subnet check is off; without Runs nothing
	// placed on this node is left out.
	in := goodInstance()
	in.NamespaceIP = "10.18.1.7"
	if _, _, err := CheckAnswer(TableResult{AppName: testJob, InstanceList: []Instance{in}}, "", View{Ranges: testRanges, Subnets: testSubnets}); err != nil {
		t.Fatalf("no Self: %v", err)
	}
	if es, n, err := CheckAnswer(TableResult{AppName: testJob, InstanceList: []Instance{gone}}, "", View{Ranges: testRanges, Self: testSelf}); err != nil || n != 0 || len(es) != 1 {
		t.Fatalf("no Runs: %+v %d %v", es, n, err)
	}
}

// A rejected answer leaves the job's cached entries as they were (no
// partial or empty answer replaces them), is counted by reason, and
// changes nothing the data planes see (no OnChange).
func TestStoreRejectsWhole(t *testing.T) {
	changes := 0
	tb := NewTable(TableOptions{Ranges: testRanges, NodeSubnets: func() []netip.Prefix { return testSubnets }, OnChange: func() { changes++ }})
	if !tb.store(goodAnswer(), testJob) || changes != 1 {
		t.Fatalf("a good answer: %d changes", changes)
	}
	before := tb.cached(table.Query{ServiceName: testJob})
	for _, hostile := range []func(r *TableResult){
		func(r *TableResult) { r.InstanceList[0].ServiceIP[0].Address = "8.8.8.8" },
		func(r *TableResult) {
			r.InstanceList = append(r.InstanceList, Instance{NamespaceIP: "10.18.3.2", HostIP: "127.0.0.1", HostPort: 1})
		},
		func(r *TableResult) { r.InstanceList = nil; r.AppName = "app.ns.other.ns" }, // answers another job
		func(r *TableResult) { r.InstanceList[0].ServiceIP[0].Address = "9.9.9.9" },
	} {
		r := goodAnswer()
		hostile(&r)
		if tb.store(r, testJob) {
			t.Fatalf("stored %+v", r)
		}
	}
	after := tb.cached(table.Query{ServiceName: testJob})
	if changes != 1 || len(after) != 1 || !sameEntry(before[0], after[0]) {
		t.Fatalf("after hostile answers: %d changes, entries %+v", changes, after)
	}
	if es := tb.cached(table.Query{ServiceName: "app.ns.other.ns"}); len(es) != 0 {
		t.Fatalf("another job's entries: %+v", es)
	}
	got := tb.Rejected()
	if got[ReasonServiceIP] != 2 || got[ReasonHost] != 1 || got[ReasonJob] != 1 || len(got) != len(Reasons) {
		t.Fatalf("Rejected() = %v", got)
	}
}

// An answer placing on this node an instance it does not run leaves that
// instance out, counted, and keeps the rest, the node's own included.
func TestStoreLeavesOutWhatThisNodeDoesNotRun(t *testing.T) {
	local, err := table.NewStandalone(table.Options{Range: testRanges[0], Node: table.Node{IP: testSelf.Addr(), Port: int(testSelf.Port())}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := local.Add(table.Instance{ServiceName: testJob, Instance: 1, NsIP: netip.MustParseAddr("10.18.1.2")}); err != nil {
		t.Fatal(err)
	}
	link := NewLink(LinkOptions{Node: testSelf})
	tb := NewTable(TableOptions{Local: local, Link: link, Ranges: testRanges, NodeSubnets: func() []netip.Prefix { return testSubnets }})
	r := goodAnswer()
	r.InstanceList = append(r.InstanceList,
		Instance{InstanceNumber: 1, NamespaceIP: "10.18.1.2", HostIP: "192.0.2.10", HostPort: 50103},
		Instance{InstanceNumber: 2, NamespaceIP: "10.18.1.3", HostIP: "192.0.2.10", HostPort: 50103})
	if !tb.store(r, testJob) {
		t.Fatalf("rejected: %v", tb.Rejected())
	}
	es := tb.cached(table.Query{ServiceName: testJob})
	if len(es) != 2 || es[0].Instance != 0 || es[1].Instance != 1 || tb.LeftOut() != 1 {
		t.Fatalf("entries %+v, %d left out", es, tb.LeftOut())
	}
}
