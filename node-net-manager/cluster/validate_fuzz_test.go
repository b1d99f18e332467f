package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/config"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

// Message kinds FuzzClusterMessages feeds its payload as (kind % 3).
const (
	fuzzSubnet  = iota // nodes/<id>/net/subnetwork/result
	fuzzTable          // nodes/<id>/net/tablequery/result
	fuzzUpdates        // jobs/<job>/updates_available
)

// Every MQTT message the node consumes, as arbitrary bytes, through the
// code paths its handlers take: the subnet answer as Client.Subnet reads it
// and the registration adopts it (config.Network.Adopt); a table answer's
// key as onAnswer extracts it, then the answer as Client.Query decodes it
// and Table.store takes it (about the job asked by name, or by IP when
// asked is empty); a job's update, whose payload nothing reads, as the
// Refresh its topic's job triggers. Never a panic; the table never holds
// an entry that breaks the rules, and a rejected answer leaves the job
// cached before it as it was.
func FuzzClusterMessages(f *testing.F) {
	good, _ := json.Marshal(goodAnswer())
	f.Add(uint8(fuzzTable), testJob, good)
	f.Add(uint8(fuzzTable), "", good)
	for _, s := range []string{
		`{"app_name":"app.ns.web.ns","query_key":"10.30.0.1","instance_list":[{"instance_number":1,"namespace_ip":"10.18.1.2","host_ip":"192.0.2.10","host_port":50103,"service_ip":[{"IpType":"RR","Address":"10.30.0.1"}]}]}`,
		`{"app_name":"app.ns.web.ns","instance_list":[{"namespace_ip":"10.18.1.9","host_ip":"192.0.2.20","host_port":50103}]}`,
		`{"app_name":"app.ns.web.ns","instance_list":[{"namespace_ip":"10.18.2.2","host_ip":"127.0.0.1","host_port":70000,"service_ip":[{"Address":"8.8.8.8"}]}]}`,
		`{"app_name":"#","query_key":"+","instance_list":null,"extra":[1,2,3]}`,
		`{"app_name":"app.ns.web.ns","instance_list":[{"namespace_ip":"10.18.2.2","namespace_ip_v6":"fdff::1","host_ip":"::ffff:1.2.3.4","host_port":1}]}`,
		`{"instance_list":[{}],"query_key":"10.30.9.9"}`,
		`{"app_name":"app.ns.web.ns","instance_list":[{"namespace_ip":"10.18.2.2","host_ip":"192.0.2.20","host_port":50103,"service_ip":[{"IpType":"RR","Address":"8.8.8.8","Address_v6":"2001:db8::1"}]}]}`,
		`{"app_name":"app.ns.web.ns","instance_list":[{"namespace_ip":"10.18.1.3","host_ip":"192.0.2.10","host_port":50103}]}`,
		`[]`, `null`, `{"app_name":1}`,
	} {
		f.Add(uint8(fuzzTable), testJob, []byte(s))
	}
	f.Add(uint8(fuzzSubnet), "", []byte(`{"address":"10.18.1.0","addressv6":"fc00::"}`))
	f.Add(uint8(fuzzSubnet), "", []byte(`{"address":"10.30.0.0","addressv6":"fdff::"}`))
	f.Add(uint8(fuzzSubnet), "", []byte(`{"address":"","addressv6":"x"}`))
	f.Add(uint8(fuzzUpdates), testJob, []byte(`{"type":"DEPLOYMENT"}`))
	f.Add(uint8(fuzzUpdates), "jobs/#", []byte(`{"type":7}`))
	local := fuzzLocal(f)
	net := fuzzNetwork(f)
	f.Fuzz(func(t *testing.T, kind uint8, asked string, payload []byte) {
		switch kind % 3 {
		case fuzzSubnet:
			fuzzSubnetAnswer(t, net, payload)
		case fuzzTable:
			fuzzTableAnswer(t, local, asked, payload)
		case fuzzUpdates:
			// The handler reads only the topic's job; an unregistered
			// table refreshes nothing.
			NewTable(TableOptions{Link: NewLink(LinkOptions{}), Log: quiet()}).Refresh(asked)
		}
	})
}

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// fuzzLocal is this node's own table: one instance of testJob.
func fuzzLocal(tb testing.TB) *table.Standalone {
	local, err := table.NewStandalone(table.Options{Range: testRanges[0], RangeV6: testRanges[1], Node: table.Node{IP: testSelf.Addr(), Port: int(testSelf.Port())}})
	if err == nil {
		_, err = local.Add(table.Instance{ServiceName: testJob, Instance: 1, NsIP: netip.MustParseAddr("10.18.1.2")})
	}
	if err != nil {
		tb.Fatal(err)
	}
	return local
}

func fuzzNetwork(tb testing.TB) config.Network {
	n, err := config.Default().Validate()
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// fuzzSubnetAnswer reads a subnet answer as Client.Subnet and the
// registration do: an adopted subnet is one the node can use.
func fuzzSubnetAnswer(t *testing.T, n config.Network, payload []byte) {
	var r SubnetResult
	if json.Unmarshal(payload, &r) != nil || (r.Address == "" && r.AddressV6 == "") {
		return
	}
	a, err := n.Adopt(r.Address, r.AddressV6)
	if err != nil {
		return
	}
	if !a.NodeSubnet.Addr().Is4() || a.NodeSubnet.Overlaps(a.ServiceRange) || (a.NodeSubnetV6.IsValid() && a.NodeSubnetV6.Overlaps(a.ServiceRangeV6)) {
		t.Fatalf("adopted %s: %+v", payload, a)
	}
}

// fuzzTableAnswer stores a table answer over a cached good one.
func fuzzTableAnswer(t *testing.T, local *table.Standalone, asked string, payload []byte) {
	var k TableResult // onAnswer's key extraction
	if json.Unmarshal(payload, &k) != nil {
		return // dropped by the handler: nobody is woken
	}
	var r TableResult // Client.Query's decoding
	if err := json.Unmarshal(payload, &r); err != nil {
		t.Fatalf("the key decoded, the answer did not: %v", err)
	}
	tb := NewTable(TableOptions{Local: local, Link: NewLink(LinkOptions{Node: testSelf}), Ranges: testRanges,
		NodeSubnets: func() []netip.Prefix { return testSubnets }, Log: quiet()})
	if !tb.store(goodAnswer(), testJob) {
		t.Fatal("the good answer was rejected")
	}
	before := tb.cached(table.Query{ServiceName: testJob})
	stored := tb.store(r, asked)
	var n uint64
	for _, c := range tb.Rejected() {
		n += c
	}
	if stored == (n > 0) {
		t.Fatalf("stored %v with %d rejections", stored, n)
	}
	if !stored && !slices.EqualFunc(before, tb.cached(table.Query{ServiceName: testJob}), sameEntry) {
		t.Fatalf("a rejected answer changed the cached job: %s", payload)
	}
	v := View{Ranges: testRanges, Subnets: testSubnets, Self: testSelf, Runs: func(job string, ns netip.Addr) bool {
		es, _ := local.Lookup(context.Background(), table.Query{IP: ns})
		return len(es) == 1 && es[0].ServiceName == job
	}}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for job, es := range tb.jobs {
		if len(es) > MaxInstances {
			t.Fatalf("%s: %d entries", job, len(es))
		}
		for _, e := range es {
			if err := entryOK(job, e, v); err != nil {
				t.Fatalf("the table holds %+v: %v (answer %s)", e, err, payload)
			}
		}
	}
}

// entryOK restates the rules on a stored entry, independently of
// CheckAnswer.
func entryOK(job string, e table.Entry, v View) error {
	self := netip.AddrPortFrom(e.NodeIP, uint16(e.NodePort)) == v.Self
	switch {
	case e.ServiceName != job || table.ValidateServiceName(job) != nil:
		return fmt.Errorf("job %q", job)
	case !unicast(e.NodeIP) || e.NodeIP.Zone() != "" || e.NodeIP.Is4In6() || e.NodePort < 1 || e.NodePort > 65535:
		return fmt.Errorf("node %v:%d", e.NodeIP, e.NodePort)
	case !e.NsIP.Is4() || !unicast(e.NsIP) || in(v.Ranges, e.NsIP):
		return fmt.Errorf("namespace IP %v", e.NsIP)
	case e.NsIPv6.IsValid() && (!e.NsIPv6.Is6() || e.NsIPv6.Is4In6() || e.NsIPv6.Zone() != "" || !unicast(e.NsIPv6) || in(v.Ranges, e.NsIPv6)):
		return fmt.Errorf("namespace IPv6 %v", e.NsIPv6)
	case !self && (in(v.Subnets, e.NsIP) || in(v.Subnets, e.NsIPv6)):
		return fmt.Errorf("another node's namespace IP in this node's subnets")
	case self && !v.Runs(job, e.NsIP):
		return fmt.Errorf("placed on this node, which does not run it")
	case len(e.ServiceIPs) > 2*MaxServiceIPs:
		return fmt.Errorf("%d service IPs", len(e.ServiceIPs))
	}
	for _, s := range e.ServiceIPs {
		if !in(v.Ranges, s.Address) || s.Address.Zone() != "" || strings.Contains(s.Address.String(), "%") {
			return fmt.Errorf("service IP %v", s.Address)
		}
	}
	return nil
}
