package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
)

const (
	next = -1 // NM_NEXT
	drop = 2  // NM_DROP
)

type fw struct {
	coll   *ebpf.Collection
	f      *Firewall
	router *mux.Router
}

// newFW loads the data plane (map sizes from the config, as the manager does)
// and starts the control plane on it.
func newFW(t testing.TB, config string) *fw {
	t.Helper()
	return newFWWith(t, config, nil)
}

// newFWWith is newFW with the Base changed by edit first.
func newFWWith(t testing.TB, config string, edit func(*module.Base)) *fw {
	t.Helper()
	bpftest.RequireRoot(t)
	sizes, err := MapSizes(json.RawMessage(config))
	if err != nil {
		t.Fatal(err)
	}
	coll := bpftest.LoadSized(t, "modules", "firewall", sizes)
	router := mux.NewRouter()
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	base := module.Base{ID: "1", Name: "firewall", Config: json.RawMessage(config), Router: router, Log: log,
		DataPlane: &module.DataPlane{Maps: coll.Maps, Programs: coll.Programs}}
	if edit != nil {
		edit(&base)
	}
	mod, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	f := mod.(*Firewall)
	if err := f.Attach(module.Attachment{Interface: module.Interface{Name: "lo", Ifindex: 1, Service: &module.Service{Name: "a.b.c.d"}}, Hooks: module.Hooks}); err != nil {
		t.Fatal(err)
	}
	return &fw{coll: coll, f: f, router: router}
}

// toService runs a frame as traffic going to the service (host veth TC egress).
func (w *fw) toService(t testing.TB, frame []byte) int32 {
	t.Helper()
	v, _ := bpftest.Run(t, w.coll.Programs[module.ProgramEgress], frame)
	return v
}

// fromService runs a frame as traffic leaving the service (host veth TC ingress).
func (w *fw) fromService(t testing.TB, frame []byte) int32 {
	t.Helper()
	v, _ := bpftest.Run(t, w.coll.Programs[module.ProgramIngress], frame)
	return v
}

func (w *fw) do(t testing.TB, method, path, body string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	w.router.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec.Code, rec.Body.String()
}

func (w *fw) put(t testing.TB, rules string) {
	t.Helper()
	if code, body := w.do(t, "PUT", "/rules", rules); code != 200 {
		t.Fatalf("PUT /rules %s: %d %s", rules, code, body)
	}
}

func eth4() *layers.Ethernet { return bpftest.Eth(layers.EthernetTypeIPv4) }
func eth6() *layers.Ethernet { return bpftest.Eth(layers.EthernetTypeIPv6) }

func tcp4(t testing.TB, src, dst string, sport, dport uint16) []byte {
	return bpftest.Serialize(t, eth4(), bpftest.IPv4(src, dst, layers.IPProtocolTCP), bpftest.TCP(sport, dport))
}

func udp4(t testing.TB, src, dst string, sport, dport uint16) []byte {
	return bpftest.Serialize(t, eth4(), bpftest.IPv4(src, dst, layers.IPProtocolUDP), bpftest.UDP(sport, dport))
}

func tcp6(t testing.TB, src, dst string, sport, dport uint16) []byte {
	return bpftest.Serialize(t, eth6(), bpftest.IPv6(src, dst, layers.IPProtocolTCP), bpftest.TCP(sport, dport))
}

func echo4(t testing.TB, src, dst string, typ uint8, id uint16) []byte {
	return bpftest.Serialize(t, eth4(), bpftest.IPv4(src, dst, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: id, Seq: 1})
}

func echo6(t testing.TB, src, dst string, typ uint8, id uint16) []byte {
	ip := bpftest.IPv6(src, dst, layers.IPProtocolICMPv6)
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	return bpftest.Serialize(t, eth6(), ip, icmp, &layers.ICMPv6Echo{Identifier: id, SeqNumber: 1})
}

func verdict(v int32) string { return bpftest.Verdict(v) }

// Each field matches and misses; boundaries of prefixes and port ranges.
func TestFieldsMatchAndMiss(t *testing.T) {
	cases := []struct {
		name  string
		rule  string
		frame func(t testing.TB) []byte
		to    bool // direction: to the service (else from it)
		want  int32
	}{
		{"src prefix inside", `{"action":"deny","src":"10.0.0.0/8"}`, func(t testing.TB) []byte { return tcp4(t, "10.255.255.255", "10.18.0.2", 1, 80) }, true, drop},
		{"src prefix outside", `{"action":"deny","src":"10.0.0.0/8"}`, func(t testing.TB) []byte { return tcp4(t, "11.0.0.0", "10.18.0.2", 1, 80) }, true, next},
		{"src host prefix", `{"action":"deny","src":"192.0.2.7"}`, func(t testing.TB) []byte { return tcp4(t, "192.0.2.7", "10.18.0.2", 1, 80) }, true, drop},
		{"src host prefix neighbour", `{"action":"deny","src":"192.0.2.7/32"}`, func(t testing.TB) []byte { return tcp4(t, "192.0.2.8", "10.18.0.2", 1, 80) }, true, next},
		{"dst prefix inside", `{"action":"deny","dst":"10.18.0.0/30"}`, func(t testing.TB) []byte { return tcp4(t, "1.1.1.1", "10.18.0.3", 1, 80) }, true, drop},
		{"dst prefix outside", `{"action":"deny","dst":"10.18.0.0/30"}`, func(t testing.TB) []byte { return tcp4(t, "1.1.1.1", "10.18.0.4", 1, 80) }, true, next},
		{"proto tcp matches tcp", `{"action":"deny","proto":"tcp"}`, func(t testing.TB) []byte { return tcp4(t, "1.1.1.1", "10.18.0.2", 1, 80) }, true, drop},
		{"proto tcp misses udp", `{"action":"deny","proto":"tcp"}`, func(t testing.TB) []byte { return udp4(t, "1.1.1.1", "10.18.0.2", 1, 80) }, true, next},
		{"dport range low edge", `{"action":"deny","proto":"tcp","dstPorts":"1000-2000"}`, func(t testing.TB) []byte { return tcp4(t, "1.1.1.1", "10.18.0.2", 5, 1000) }, true, drop},
		{"dport range high edge", `{"action":"deny","proto":"tcp","dstPorts":"1000-2000"}`, func(t testing.TB) []byte { return tcp4(t, "1.1.1.1", "10.18.0.2", 5, 2000) }, true, drop},
		{"dport below range", `{"action":"deny","proto":"tcp","dstPorts":"1000-2000"}`, func(t testing.TB) []byte { return tcp4(t, "1.1.1.1", "10.18.0.2", 5, 999) }, true, next},
		{"dport above range", `{"action":"deny","proto":"tcp","dstPorts":"1000-2000"}`, func(t testing.TB) []byte { return tcp4(t, "1.1.1.1", "10.18.0.2", 5, 2001) }, true, next},
		{"sport single", `{"action":"deny","srcPorts":"53"}`, func(t testing.TB) []byte { return udp4(t, "1.1.1.1", "10.18.0.2", 53, 9) }, true, drop},
		{"sport single miss", `{"action":"deny","srcPorts":"53"}`, func(t testing.TB) []byte { return udp4(t, "1.1.1.1", "10.18.0.2", 54, 9) }, true, next},
		{"port rule misses icmp", `{"action":"deny","dstPorts":"1-65535"}`, func(t testing.TB) []byte { return echo4(t, "1.1.1.1", "10.18.0.2", 8, 7) }, true, next},
		{"ingress rule, traffic to the service", `{"action":"deny","direction":"ingress"}`, func(t testing.TB) []byte { return tcp4(t, "1.1.1.1", "10.18.0.2", 1, 80) }, true, drop},
		{"ingress rule, traffic from the service", `{"action":"deny","direction":"ingress"}`, func(t testing.TB) []byte { return tcp4(t, "10.18.0.2", "1.1.1.1", 80, 1) }, false, next},
		{"egress rule, traffic from the service", `{"action":"deny","direction":"egress"}`, func(t testing.TB) []byte { return tcp4(t, "10.18.0.2", "1.1.1.1", 80, 1) }, false, drop},
		{"icmp rule", `{"action":"deny","proto":"icmp"}`, func(t testing.TB) []byte { return echo4(t, "1.1.1.1", "10.18.0.2", 8, 7) }, true, drop},
		{"icmp rule misses icmpv6", `{"action":"deny","proto":"icmp"}`, func(t testing.TB) []byte { return echo6(t, "fd00::1", "fd00:18::2", 128, 7) }, true, next},
		{"icmpv6 rule", `{"action":"deny","proto":"icmpv6"}`, func(t testing.TB) []byte { return echo6(t, "fd00::1", "fd00:18::2", 128, 7) }, true, drop},
		{"ipv6 prefix", `{"action":"deny","src":"fd00:1::/32","proto":"tcp","dstPorts":"443"}`, func(t testing.TB) []byte { return tcp6(t, "fd00:1:ffff::9", "fd00:18::2", 4000, 443) }, true, drop},
		{"ipv6 prefix outside", `{"action":"deny","src":"fd00:1::/32"}`, func(t testing.TB) []byte { return tcp6(t, "fd00:2::9", "fd00:18::2", 4000, 443) }, true, next},
		{"ipv4 rule misses ipv6", `{"action":"deny","src":"0.0.0.0/0"}`, func(t testing.TB) []byte { return tcp6(t, "fd00:2::9", "fd00:18::2", 4000, 443) }, true, next},
		{"wildcard rule matches ipv6", `{"action":"deny"}`, func(t testing.TB) []byte { return tcp6(t, "fd00:2::9", "fd00:18::2", 4000, 443) }, true, drop},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newFW(t, `{"stateful": false}`)
			w.put(t, "["+c.rule+"]")
			f := c.frame(t)
			var got int32
			if c.to {
				got = w.toService(t, f)
			} else {
				got = w.fromService(t, f)
			}
			if got != c.want {
				t.Fatalf("verdict %s, want %s", verdict(got), verdict(c.want))
			}
		})
	}
}

// The first match by priority decides: an allow and an overlapping deny.
func TestPriorityOrder(t *testing.T) {
	w := newFW(t, `{"stateful": false}`)
	f := tcp4(t, "10.1.2.3", "10.18.0.2", 1, 80)
	w.put(t, `[{"action":"allow","src":"10.0.0.0/8","priority":10},{"action":"deny","src":"10.1.0.0/16","priority":20}]`)
	if v := w.toService(t, f); v != next {
		t.Fatalf("allow first: %s", verdict(v))
	}
	w.put(t, `[{"action":"allow","src":"10.0.0.0/8","priority":20},{"action":"deny","src":"10.1.0.0/16","priority":10}]`)
	if v := w.toService(t, f); v != drop {
		t.Fatalf("deny first: %s", verdict(v))
	}
	// Equal priorities: order of the set.
	w.put(t, `[{"action":"allow","src":"10.0.0.0/8"},{"action":"deny","src":"10.1.0.0/16"}]`)
	if v := w.toService(t, f); v != next {
		t.Fatalf("equal priority, allow listed first: %s", verdict(v))
	}
}

func TestDefaultPolicy(t *testing.T) {
	w := newFW(t, `{"defaultPolicy": "deny", "stateful": false, "rules": [{"action": "allow", "proto": "tcp", "dstPorts": "80", "direction": "ingress"}]}`)
	if v := w.toService(t, tcp4(t, "1.1.1.1", "10.18.0.2", 5, 80)); v != next {
		t.Fatalf("allowed port: %s", verdict(v))
	}
	if v := w.toService(t, tcp4(t, "1.1.1.1", "10.18.0.2", 5, 81)); v != drop {
		t.Fatalf("default deny: %s", verdict(v))
	}
	arp := bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: 1, SourceHwAddress: bpftest.MACA, SourceProtAddress: net.IP{10, 18, 0, 1},
		DstHwAddress: make([]byte, 6), DstProtAddress: net.IP{10, 18, 0, 2}})
	if v := w.toService(t, arp); v != next {
		t.Fatalf("ARP must pass a deny-all firewall: %s", verdict(v))
	}
}

// Replies to an allowed flow pass a deny; without the flow, or when
// stateless, they do not.
func TestStatefulReplies(t *testing.T) {
	rules := `"rules": [{"action": "deny", "direction": "ingress"}]`
	w := newFW(t, `{`+rules+`}`)
	reply := tcp4(t, "93.184.216.34", "10.18.0.2", 80, 40000)
	if v := w.toService(t, reply); v != drop {
		t.Fatalf("unsolicited reply: %s", verdict(v))
	}
	if v := w.fromService(t, tcp4(t, "10.18.0.2", "93.184.216.34", 40000, 80)); v != next {
		t.Fatalf("outgoing SYN: %s", verdict(v))
	}
	if v := w.toService(t, reply); v != next {
		t.Fatalf("reply of an allowed flow: %s", verdict(v))
	}
	if v := w.toService(t, tcp4(t, "93.184.216.34", "10.18.0.2", 80, 40001)); v != drop {
		t.Fatalf("another port is not the flow: %s", verdict(v))
	}
	// ICMP echo: the reply carries the request's identifier.
	w.fromService(t, echo4(t, "10.18.0.2", "1.1.1.1", 8, 77))
	if v := w.toService(t, echo4(t, "1.1.1.1", "10.18.0.2", 0, 77)); v != next {
		t.Fatalf("echo reply: %s", verdict(v))
	}
	if v := w.toService(t, echo4(t, "1.1.1.1", "10.18.0.2", 0, 78)); v != drop {
		t.Fatalf("echo reply with another id: %s", verdict(v))
	}
	w.fromService(t, echo6(t, "fd00:18::2", "fd00::1", 128, 5))
	if v := w.toService(t, echo6(t, "fd00::1", "fd00:18::2", 129, 5)); v != next {
		t.Fatalf("echo6 reply: %s", verdict(v))
	}

	stateless := newFW(t, `{"stateful": false, `+rules+`}`)
	stateless.fromService(t, tcp4(t, "10.18.0.2", "93.184.216.34", 40000, 80))
	if v := stateless.toService(t, reply); v != drop {
		t.Fatalf("stateless firewall let a reply through: %s", verdict(v))
	}
}

// A flow entry stamped a little ahead of the clock the program reads (by
// another CPU between its read and ours, or by an earlier version of the
// data plane that read the fine clock, re-adopted over the same pinned
// table) is fresh, not expired: its reply passes, its forward packets pass
// on their cached verdict.
func TestFlowSeenAhead(t *testing.T) {
	w := newFW(t, `{"defaultPolicy": "deny", "rules": [{"id": "web", "action": "allow", "direction": "egress", "proto": "tcp", "dstPorts": "80"}]}`)
	out := tcp4(t, "10.18.0.2", "93.184.216.34", 40000, 80)
	if v := w.fromService(t, out); v != next {
		t.Fatalf("outgoing SYN: %s", verdict(v))
	}
	var k fwFlow
	var e fwSeen
	var keys []fwFlow
	var vals []fwSeen
	it := w.coll.Maps["flows"].Iterate()
	for it.Next(&k, &e) {
		e.Seen += uint64(50 * time.Millisecond) // past any tick of the coarse clock
		keys, vals = append(keys, k), append(vals, e)
	}
	if err := it.Err(); err != nil || len(keys) != 1 {
		t.Fatalf("flow entries: %d, %v", len(keys), err)
	}
	if err := w.coll.Maps["flows"].Put(keys[0], vals[0]); err != nil {
		t.Fatal(err)
	}
	if v := w.toService(t, tcp4(t, "93.184.216.34", "10.18.0.2", 80, 40000)); v != next {
		t.Fatalf("the reply of a flow seen a moment ahead of the clock: %s", verdict(v))
	}
	if v := w.fromService(t, out); v != next {
		t.Fatalf("a further packet of that flow: %s", verdict(v))
	}
}

// Further packets of an allowed flow pass on the flow table's cached
// verdict (stamped with the rule set's version) and still count as hits of
// their rule; a change of the rule set judges them again.
func TestStatefulForwardVerdict(t *testing.T) {
	w := newFW(t, `{"defaultPolicy": "deny", "rules": [{"id": "web", "action": "allow", "direction": "ingress", "proto": "tcp", "dstPorts": "80"}]}`)
	in := tcp4(t, "192.0.2.9", "10.18.0.2", 40000, 80)
	for i := 0; i < 5; i++ {
		if v := w.toService(t, in); v != next {
			t.Fatalf("packet %d of an allowed flow: %s", i, verdict(v))
		}
	}
	hits := func(id string) uint64 {
		var rs []Rule
		_, body := w.do(t, "GET", "/rules", "")
		if err := json.Unmarshal([]byte(body), &rs); err != nil || len(rs) == 0 || rs[0].ID != id {
			t.Fatalf("GET /rules: %s", body)
		}
		return rs[0].Hits
	}
	if h := hits("web"); h != 5 {
		t.Fatalf("web decided %d packets, want 5 (every packet, cached or not)", h)
	}
	w.put(t, `[{"id": "noweb", "action": "deny", "direction": "ingress", "proto": "tcp", "dstPorts": "80"}]`)
	if v := w.toService(t, in); v != drop {
		t.Fatalf("a flow allowed by the old rule set, after a deny rule replaced it: %s", verdict(v))
	}
	if v := w.fromService(t, tcp4(t, "10.18.0.2", "192.0.2.9", 80, 40000)); v != next {
		t.Fatalf("a reply of the flow while it is remembered: %s", verdict(v))
	}
	w.put(t, `[{"id": "web2", "action": "allow", "direction": "ingress", "proto": "tcp", "dstPorts": "80"}]`)
	for i := 0; i < 2; i++ {
		if v := w.toService(t, in); v != next {
			t.Fatalf("packet %d after the flow was allowed again: %s", i, verdict(v))
		}
	}
	if h := hits("web2"); h != 2 {
		t.Fatalf("web2 decided %d packets, want 2", h)
	}
}

func TestFragmentsAndMalformed(t *testing.T) {
	w := newFW(t, `{"stateful": false, "rules": [{"action": "deny", "proto": "udp", "dstPorts": "53"}]}`)
	later := bpftest.IPv4("1.1.1.1", "10.18.0.2", layers.IPProtocolUDP)
	later.FragOffset = 100
	frag := bpftest.Serialize(t, eth4(), later, bpftest.Payload(make([]byte, 32)))
	if v := w.toService(t, frag); v != next {
		t.Fatalf("a later fragment has no ports, so a port rule cannot match it: %s", verdict(v))
	}
	w.put(t, `[{"action": "deny", "src": "1.1.1.0/24"}]`)
	if v := w.toService(t, frag); v != drop {
		t.Fatalf("a port-less rule judges later fragments: %s", verdict(v))
	}
	good := tcp4(t, "2.2.2.2", "10.18.0.2", 1, 80)
	cut := append([]byte(nil), good[:14+20+8]...) // TCP header cut short
	if v := w.toService(t, cut); v != drop {
		t.Fatalf("truncated TCP header: %s", verdict(v))
	}
	bad := append([]byte(nil), good...)
	bad[14] = 0x44 // IHL 4
	if v := w.toService(t, bad); v != drop {
		t.Fatalf("malformed IPv4 header: %s", verdict(v))
	}
}

func TestRoutesAndHits(t *testing.T) {
	w := newFW(t, `{"stateful": false}`)
	code, body := w.do(t, "POST", "/rules", `{"action": "deny", "proto": "tcp", "dstPorts": "22"}`)
	if code != 200 || !strings.Contains(body, `"id":"r1"`) {
		t.Fatalf("POST: %d %s", code, body)
	}
	code, body = w.do(t, "POST", "/rules", `{"id": "web", "action": "allow", "proto": "tcp", "dstPorts": "80", "priority": 5}`)
	if code != 200 {
		t.Fatalf("POST: %d %s", code, body)
	}
	for i := 0; i < 3; i++ {
		w.toService(t, tcp4(t, "1.1.1.1", "10.18.0.2", 5, 22))
	}
	w.toService(t, tcp4(t, "1.1.1.1", "10.18.0.2", 5, 80))
	var rs []Rule
	_, body = w.do(t, "GET", "/rules", "")
	if err := json.Unmarshal([]byte(body), &rs); err != nil || len(rs) != 2 || rs[0].ID != "web" || rs[0].Hits != 1 || rs[1].Hits != 3 {
		t.Fatalf("GET /rules: %s", body)
	}
	// Hits survive a change of the set for rules that stay.
	if code, body := w.do(t, "POST", "/rules", `{"action": "deny", "proto": "udp"}`); code != 200 {
		t.Fatalf("POST: %d %s", code, body)
	}
	w.toService(t, tcp4(t, "1.1.1.1", "10.18.0.2", 5, 22))
	_, body = w.do(t, "GET", "/rules", "")
	_ = json.Unmarshal([]byte(body), &rs)
	if rs[1].ID != "r1" || rs[1].Hits != 4 {
		t.Fatalf("hits after a change: %s", body)
	}
	if code, _ := w.do(t, "DELETE", "/rules/r1", ""); code != 200 {
		t.Fatalf("DELETE: %d", code)
	}
	if v := w.toService(t, tcp4(t, "1.1.1.1", "10.18.0.2", 5, 22)); v != next {
		t.Fatalf("deleted rule still applies: %s", verdict(v))
	}
	if code, _ := w.do(t, "DELETE", "/rules/r1", ""); code != 404 {
		t.Fatalf("second DELETE: %d", code)
	}
	code, body = w.do(t, "GET", "/stats", "")
	var stats map[string]map[string]Verdicts
	if err := json.Unmarshal([]byte(body), &stats); err != nil || stats["lo"]["ingress"].Denied < 4 || stats["lo"]["ingress"].Allowed < 1 {
		t.Fatalf("GET /stats: %d %s", code, body)
	}
}

// Bad input is a 4xx naming the field, and the active set is unchanged.
func TestBadRulesChangeNothing(t *testing.T) {
	w := newFW(t, `{"stateful": false, "maxRules": 3, "rules": [{"id": "keep", "action": "deny", "proto": "tcp", "dstPorts": "22"}]}`)
	_, before := w.do(t, "GET", "/rules", "")
	f := tcp4(t, "1.1.1.1", "10.18.0.2", 5, 22)
	cases := []struct {
		method, body string
		code         int
		text         string
	}{
		{"POST", `{"action": "deny", "src": "10.0.0.0/33"}`, 400, ".src"},
		{"POST", `{"action": "deny", "src": "10.0.0.1/8"}`, 400, "host bits"},
		{"POST", `{"action": "deny", "dstPorts": "2000-1000"}`, 400, "reversed"},
		{"POST", `{"action": "deny", "dstPorts": "70000"}`, 400, ".dstPorts"},
		{"POST", `{"action": "deny", "srcPorts": "0"}`, 400, ".srcPorts"},
		{"POST", `{"action": "deny", "proto": "sctp"}`, 400, ".proto"},
		{"POST", `{"action": "block"}`, 400, ".action"},
		{"POST", `{"action": "deny", "direction": "sideways"}`, 400, ".direction"},
		{"POST", `{"action": "deny", "proto": "icmp", "dstPorts": "80"}`, 400, "ports need"},
		{"POST", `{"action": "deny", "src": "10.0.0.0/8", "dst": "fd00::/8"}`, 400, "families"},
		{"POST", `{"action": "deny", "proto": "icmpv6", "src": "10.0.0.0/8"}`, 400, "families"},
		{"POST", `{"id": "keep", "action": "deny"}`, 409, "exists"},
		{"POST", `{"action": `, 400, "malformed JSON"},
		{"PUT", `[{"id": "a", "action": "deny"}, {"id": "a", "action": "allow"}]`, 400, "used twice"},
		{"PUT", `[{"action": "deny"}, {"action": "deny"}, {"action": "deny"}, {"action": "deny"}]`, 400, "limit of 3"},
		{"PUT", `[{"action": "deny"}, {"action": "nope"}]`, 400, "rules[1].action"},
		{"PUT", `{"action": "deny"}`, 400, "malformed JSON"},
		{"PUT", "[" + strings.Repeat(`{"action": "deny"},`, 300000) + "]", 413, "larger than"},
	}
	for _, c := range cases {
		code, body := w.do(t, c.method, "/rules", c.body)
		if code != c.code || !strings.Contains(body, c.text) {
			t.Errorf("%s %s: %d %s, want %d containing %q", c.method, c.body, code, body, c.code, c.text)
		}
		if _, after := w.do(t, "GET", "/rules", ""); after != before {
			t.Fatalf("%s %s changed the set: %s", c.method, c.body, after)
		}
		if v := w.toService(t, f); v != drop {
			t.Fatalf("%s %s changed the data plane: %s", c.method, c.body, verdict(v))
		}
		_, before = w.do(t, "GET", "/rules", "") // hits moved on
	}
	// Full set: POST is refused.
	w.put(t, `[{"action": "deny", "proto": "tcp", "dstPorts": "22"}, {"action": "deny", "proto": "udp"}, {"action": "allow"}]`)
	if code, body := w.do(t, "POST", "/rules", `{"action": "deny"}`); code != 409 || !strings.Contains(body, "full") {
		t.Fatalf("POST to a full set: %d %s", code, body)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []string{`{"defaultPolicy": "maybe"}`, `{"maxRules": 0}`, `{"maxRules": 5000}`, `{"flowTimeout": 0}`, `{"rules": [{"action": "x"}]}`, `{"stateful": "yes"}`} {
		if _, err := MapSizes(json.RawMessage(c)); err == nil && !strings.Contains(c, "rules") {
			t.Errorf("MapSizes accepted %s", c)
		}
	}
	bpftest.RequireRoot(t)
	coll := bpftest.Load(t, bpftest.ModuleObject(t, "modules", "firewall"))
	_, err := New(module.Base{Config: json.RawMessage(`{"rules": [{"action": "x"}]}`), Router: mux.NewRouter(), DataPlane: &module.DataPlane{Maps: coll.Maps}})
	if err == nil || !strings.Contains(err.Error(), "rules[0].action") {
		t.Fatalf("bad rule in config: %v", err)
	}
}

// Go mirrors of the C structs: same size and offsets.
func TestStructsMatchC(t *testing.T) {
	spec, err := ebpf.LoadCollectionSpec(bpftest.ModuleObject(t, "modules", "firewall"))
	if err != nil {
		t.Fatal(err)
	}
	for cName, v := range map[string]any{"fw_state": fwState{}, "fw_lpm4": fwLPM4{}, "fw_lpm6": fwLPM6{}, "fw_rule": fwRule{},
		"fw_stat_key": fwStatKey{}, "fw_stat": fwStat{}, "fw_flow": fwFlow{}, "fw_bits": bits{}, "fw_seen": fwSeen{}} {
		var s *btf.Struct
		if err := spec.Types.TypeByName(cName, &s); err != nil {
			t.Fatalf("%s: %v", cName, err)
		}
		gt := reflect.TypeOf(v)
		if size := binarySize(v); int(s.Size) != size || len(s.Members) != gt.NumField() {
			t.Fatalf("%s: C %d bytes/%d members, Go %d bytes/%d fields", cName, s.Size, len(s.Members), size, gt.NumField())
		}
		off := 0
		for i, m := range s.Members {
			if uint32(off)*8 != uint32(m.Offset) && cName != "fw_state" {
				t.Fatalf("%s.%s at bit %d, Go field %d at byte %d", cName, m.Name, m.Offset, i, off)
			}
			off += binarySize(reflect.ValueOf(v).Field(i).Interface())
		}
		if cName == "fw_state" {
			for i, m := range s.Members {
				if uint32(gt.Field(i).Offset)*8 != uint32(m.Offset) {
					t.Fatalf("fw_state.%s at bit %d, Go at byte %d", m.Name, m.Offset, gt.Field(i).Offset)
				}
			}
		}
	}
}

func binarySize(v any) int { return int(reflect.TypeOf(v).Size()) - padding(v) }

// padding is the trailing alignment padding Go adds to packed-in-C structs.
func padding(v any) int {
	switch v.(type) {
	case fwLPM4:
		return 12 - 9
	case fwLPM6:
		return 24 - 21
	}
	return 0
}

// BenchmarkRules measures ns/packet at 10, 100 and 1000 rules, for a packet
// that matches the last rule (the worst case for a linear scan) and one that
// matches none.
func BenchmarkRules(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		w := newFW(b, `{"stateful": false, "maxRules": 1024}`)
		var rs []string
		for i := 0; i < n-1; i++ {
			rs = append(rs, fmt.Sprintf(`{"action":"deny","src":"10.%d.%d.0/24","proto":"tcp","dstPorts":"%d"}`, i/256, i%256, 1000+i))
		}
		rs = append(rs, `{"action":"allow","src":"192.0.2.0/24","proto":"tcp","dstPorts":"443"}`)
		w.put(b, "["+strings.Join(rs, ",")+"]")
		for name, f := range map[string][]byte{"last": tcp4(b, "192.0.2.9", "10.18.0.2", 5, 443), "none": tcp4(b, "198.51.100.1", "10.18.0.2", 5, 443)} {
			b.Run(fmt.Sprintf("rules=%d/%s", n, name), func(b *testing.B) {
				prog := w.coll.Programs[module.ProgramEgress]
				if v, _, err := prog.Benchmark(f, 1, nil); err != nil || int32(v) != next {
					b.Fatalf("verdict %d, %v", int32(v), err)
				}
				b.ResetTimer()
				_, per, err := prog.Benchmark(f, b.N, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(per.Nanoseconds()), "ns/packet")
			})
		}
	}
}

// BenchmarkStateful measures ns/packet of the stateful paths beside the
// harness's own cost (noop): "reply" is a reply of an allowed flow (found in
// flows, no classification), "forward" a further packet of an allowed flow
// (its cached verdict: two lookups, no classification), "stateless" that
// packet with stateful off (classified against 10 rules every time).
func BenchmarkStateful(b *testing.B) {
	rules := make([]string, 0, 10)
	for i := 0; i < 9; i++ {
		rules = append(rules, fmt.Sprintf(`{"action":"deny","src":"10.0.%d.0/24","proto":"tcp","dstPorts":"%d"}`, i, 1000+i))
	}
	rules = append(rules, `{"action":"allow","src":"192.0.2.0/24","proto":"tcp","dstPorts":"443","direction":"ingress"}`)
	on := newFW(b, `{"defaultPolicy": "deny"}`)
	on.put(b, "["+strings.Join(rules, ",")+"]")
	off := newFW(b, `{"defaultPolicy": "deny", "stateful": false}`)
	off.put(b, "["+strings.Join(rules, ",")+"]")
	first := tcp4(b, "192.0.2.9", "10.18.0.2", 40000, 443)
	reply := tcp4(b, "10.18.0.2", "192.0.2.9", 443, 40000)
	if v := on.toService(b, first); v != next {
		b.Fatalf("first packet: verdict %d", v)
	}
	for _, c := range []struct {
		name  string
		prog  *ebpf.Program
		frame []byte
	}{
		{"noop", bpftest.Noop(b), first},
		{"reply", on.coll.Programs[module.ProgramIngress], reply},
		{"forward", on.coll.Programs[module.ProgramEgress], first},
		{"stateless", off.coll.Programs[module.ProgramEgress], first},
	} {
		b.Run(c.name, func(b *testing.B) {
			if v, _, err := c.prog.Benchmark(c.frame, 1, nil); err != nil || int32(v) != next {
				b.Fatalf("verdict %d, %v", int32(v), err)
			}
			b.ResetTimer()
			_, per, err := c.prog.Benchmark(c.frame, b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(per.Nanoseconds()), "ns/packet")
		})
	}
}

var _ = gopacket.Payload(nil)
var _ = http.MethodGet
