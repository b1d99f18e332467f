package main

import (
	"encoding/json"
	"net"
	"net/netip"
	"reflect"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
)

const (
	next     = -1
	redirect = 7
)

var gwMAC = [6]byte{0x02, 0x6e, 10, 18, 0, 1}

// dp is a loaded data plane with translations for a client (10.18.0.2,
// instance IP 10.30.0.2, ifindex 12) and a service with three instances
// (round robin 10.30.0.1; 10.18.0.3-5 on ifindex 13-15).
type dp struct {
	coll *ebpf.Collection
}

func entries() []entry {
	es := []entry{{name: "app.ns.client.ns", nsIP: netip.MustParseAddr("10.18.0.2"), rrIP: netip.MustParseAddr("10.30.0.9"), instIP: netip.MustParseAddr("10.30.0.2")}}
	for i := 0; i < 3; i++ {
		es = append(es, entry{name: "app.ns.web.ns", instance: i, nsIP: netip.AddrFrom4([4]byte{10, 18, 0, byte(3 + i)}),
			rrIP: netip.MustParseAddr("10.30.0.1"), instIP: netip.AddrFrom4([4]byte{10, 30, 0, byte(10 + i)})})
	}
	return es
}

func attachedAll() map[netip.Addr]local {
	m := map[netip.Addr]local{}
	for i := 0; i < 4; i++ {
		m[netip.AddrFrom4([4]byte{10, 18, 0, byte(2 + i)})] = local{ifindex: uint32(12 + i), mac: [6]byte{0x02, 0, 0, 0, 0, byte(2 + i)}}
	}
	return m
}

func newDP(t testing.TB) *dp {
	t.Helper()
	bpftest.RequireRoot(t)
	coll := bpftest.Load(t, bpftest.ModuleObject(t, "modules", "proxy"))
	cfg := pxConfig{RangeAddr: [4]byte{10, 30, 0, 0}, RangeMask: [4]byte{255, 255, 0, 0}, GwMAC: gwMAC}
	if err := coll.Maps["config"].Put(uint32(0), cfg); err != nil {
		t.Fatal(err)
	}
	tr := plan(entries(), attachedAll())
	if err := replaceAll(coll.Maps["services"], tr.services, new([4]byte)); err != nil {
		t.Fatal(err)
	}
	if err := replaceAll(coll.Maps["backends"], tr.backends, new(pxBackendKey)); err != nil {
		t.Fatal(err)
	}
	if err := replaceAll(coll.Maps["senders"], tr.senders, new([4]byte)); err != nil {
		t.Fatal(err)
	}
	for ip := range tr.services {
		_ = coll.Maps["rr"].Put(ip, uint64(0))
	}
	return &dp{coll: coll}
}

func (d *dp) run(t testing.TB, frame []byte) (int32, []byte) {
	t.Helper()
	return bpftest.Run(t, d.coll.Programs[module.ProgramIngress], frame)
}

func eth() *layers.Ethernet { return bpftest.Eth(layers.EthernetTypeIPv4) }

func tcpFrame(t testing.TB, src, dst string, sport, dport uint16, opts ...layers.IPv4Option) []byte {
	ip := bpftest.IPv4(src, dst, layers.IPProtocolTCP)
	ip.Options = opts
	return bpftest.Serialize(t, eth(), ip, bpftest.TCP(sport, dport), bpftest.Payload([]byte("data")))
}

// check parses an output frame: addresses, MACs, and both checksums against
// ones computed from scratch.
func check(t *testing.T, out []byte, src, dst string, dmac byte) {
	t.Helper()
	pk := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	e := pk.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if e.DstMAC[5] != dmac || !reflect.DeepEqual([]byte(e.SrcMAC), gwMAC[:]) {
		t.Fatalf("MACs %s -> %s", e.SrcMAC, e.DstMAC)
	}
	ip := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip.SrcIP.String() != src || ip.DstIP.String() != dst {
		t.Fatalf("addresses %s -> %s, want %s -> %s", ip.SrcIP, ip.DstIP, src, dst)
	}
	var sum uint32
	for i := 14; i < 14+int(ip.IHL)*4; i += 2 {
		sum += uint32(out[i])<<8 | uint32(out[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if sum != 0xffff {
		t.Fatal("IPv4 header checksum is wrong")
	}
	fresh := &layers.IPv4{Version: 4, IHL: 5, TTL: ip.TTL, Protocol: ip.Protocol, SrcIP: ip.SrcIP, DstIP: ip.DstIP}
	switch l4 := pk.TransportLayer().(type) {
	case *layers.TCP:
		c := *l4
		re := bpftest.Decode(bpftest.Serialize(t, eth(), fresh, &c, gopacket.Payload(l4.Payload)))
		if want := re.Layer(layers.LayerTypeTCP).(*layers.TCP).Checksum; want != l4.Checksum {
			t.Fatalf("TCP checksum %#04x, from scratch %#04x", l4.Checksum, want)
		}
	case *layers.UDP:
		c := *l4
		re := bpftest.Decode(bpftest.Serialize(t, eth(), fresh, &c, gopacket.Payload(l4.Payload)))
		if want := re.Layer(layers.LayerTypeUDP).(*layers.UDP).Checksum; want != l4.Checksum {
			t.Fatalf("UDP checksum %#04x, from scratch %#04x", l4.Checksum, want)
		}
	}
}

func TestTranslateRoundRobinAndBack(t *testing.T) {
	d := newDP(t)
	var got []string
	for i := 0; i < 4; i++ {
		v, out := d.run(t, tcpFrame(t, "10.18.0.2", "10.30.0.1", uint16(40000+i), 80))
		if v != redirect {
			t.Fatalf("verdict %s, want REDIRECT", bpftest.Verdict(v))
		}
		ip := bpftest.Decode(out).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		got = append(got, ip.DstIP.String())
		check(t, out, "10.30.0.2", ip.DstIP.String(), ip.DstIP.To4()[3])
	}
	want := []string{"10.18.0.3", "10.18.0.4", "10.18.0.5", "10.18.0.3"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round robin %v, want %v", got, want)
	}
	// The session sticks.
	_, out := d.run(t, tcpFrame(t, "10.18.0.2", "10.30.0.1", 40001, 80))
	check(t, out, "10.30.0.2", "10.18.0.4", 4)
	// The reply goes back as the service IP to the client.
	v, out := d.run(t, tcpFrame(t, "10.18.0.4", "10.30.0.2", 80, 40001))
	if v != redirect {
		t.Fatalf("reply verdict %s", bpftest.Verdict(v))
	}
	check(t, out, "10.30.0.1", "10.18.0.2", bpftest.MACA[5]) // the MAC the client sent from
}

func TestInstanceIPUDPOptionsAndEcho(t *testing.T) {
	d := newDP(t)
	udp := bpftest.Serialize(t, eth(), bpftest.IPv4("10.18.0.2", "10.30.0.12", layers.IPProtocolUDP), bpftest.UDP(5000, 7000), bpftest.Payload([]byte("x")))
	if v, out := d.run(t, udp); v != redirect {
		t.Fatalf("udp: %s", bpftest.Verdict(v))
	} else {
		check(t, out, "10.30.0.2", "10.18.0.5", 5)
	}
	opts := layers.IPv4Option{OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}}
	if v, out := d.run(t, tcpFrame(t, "10.18.0.2", "10.30.0.10", 1234, 80, opts)); v != redirect {
		t.Fatalf("options: %s", bpftest.Verdict(v))
	} else {
		check(t, out, "10.30.0.2", "10.18.0.3", 3)
	}
	echo := bpftest.Serialize(t, eth(), bpftest.IPv4("10.18.0.2", "10.30.0.11", layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 5, Seq: 1})
	if v, out := d.run(t, echo); v != redirect {
		t.Fatalf("echo: %s", bpftest.Verdict(v))
	} else {
		check(t, out, "10.30.0.2", "10.18.0.4", 4)
	}
	reply := bpftest.Serialize(t, eth(), bpftest.IPv4("10.18.0.4", "10.30.0.2", layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(0, 0), Id: 5, Seq: 1})
	if v, out := d.run(t, reply); v != redirect {
		t.Fatalf("echo reply: %s", bpftest.Verdict(v))
	} else {
		check(t, out, "10.30.0.11", "10.18.0.2", bpftest.MACA[5])
	}
}

// What the data plane cannot translate it passes on untouched.
func TestPassesOnUntouched(t *testing.T) {
	d := newDP(t)
	good := tcpFrame(t, "10.18.0.2", "10.30.0.1", 1, 80)
	cut := append([]byte(nil), good[:14+20+10]...)
	cases := map[string][]byte{
		"not a service IP":             tcpFrame(t, "10.18.0.2", "192.0.2.1", 1, 80),
		"service IP without instances": tcpFrame(t, "10.18.0.2", "10.30.99.1", 1, 80),
		"unknown sender":               tcpFrame(t, "10.18.0.77", "10.30.0.1", 1, 80),
		"truncated TCP":                cut,
		"ipv6":                         bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv6), bpftest.IPv6("fd00::1", "fd00::2", layers.IPProtocolTCP), bpftest.TCP(1, 2)),
		"icmp unreachable":             bpftest.Serialize(t, eth(), bpftest.IPv4("10.18.0.2", "10.30.0.1", layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 1)}),
	}
	for name, f := range cases {
		v, out := d.run(t, f)
		if v != next || string(out) != string(f) {
			t.Errorf("%s: %s, changed=%v", name, bpftest.Verdict(v), string(out) != string(f))
		}
	}
	var perCPU []uint64
	_ = d.coll.Maps["stats"].Lookup(uint32(3), &perCPU)
	var malformed uint64
	for _, n := range perCPU {
		malformed += n
	}
	if malformed != 1 {
		t.Fatalf("malformed count %d, want 1", malformed)
	}
}

func TestPlan(t *testing.T) {
	att := attachedAll()
	delete(att, netip.MustParseAddr("10.18.0.4")) // instance 1 is not on this node
	tr := plan(entries(), att)
	rr := tr.services[[4]byte{10, 30, 0, 1}]
	if rr.Kind != 0 || rr.Count != 2 {
		t.Fatalf("round robin service %+v", rr)
	}
	if b := tr.backends[pxBackendKey{ServiceIP: [4]byte{10, 30, 0, 1}, Index: 1}]; b.NsIP != [4]byte{10, 18, 0, 5} || b.Ifindex != 15 {
		t.Fatalf("second backend %+v", b)
	}
	if _, ok := tr.services[[4]byte{10, 30, 0, 11}]; ok {
		t.Fatal("an instance IP of a remote instance was planned")
	}
	if tr.senders[[4]byte{10, 18, 0, 2}] != [4]byte{10, 30, 0, 2} {
		t.Fatalf("senders %v", tr.senders)
	}
}

func TestConfig(t *testing.T) {
	if s, err := MapSizes(json.RawMessage(`{"maxSessions": 1000}`)); err != nil || s["sessions"] != 1000 {
		t.Fatalf("%v %v", s, err)
	}
	for _, bad := range []string{`{"serviceRange": "fd00::/64"}`, `{"serviceRange": "10.30.0.1/16"}`, `{"maxSessions": 0}`, `[]`} {
		if _, err := MapSizes(json.RawMessage(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestStructsMatchC(t *testing.T) {
	spec, err := ebpf.LoadCollectionSpec(bpftest.ModuleObject(t, "modules", "proxy"))
	if err != nil {
		t.Fatal(err)
	}
	for cName, v := range map[string]any{"px_config": pxConfig{}, "px_service": pxService{}, "px_backend_key": pxBackendKey{},
		"px_backend": pxBackend{}, "px_flow": pxFlow{}, "px_session": pxSession{}} {
		var s *btf.Struct
		if err := spec.Types.TypeByName(cName, &s); err != nil {
			t.Fatal(err)
		}
		gt := reflect.TypeOf(v)
		if int(s.Size) != int(gt.Size()) || len(s.Members) != gt.NumField() {
			t.Fatalf("%s: C %d/%d, Go %d/%d", cName, s.Size, len(s.Members), gt.Size(), gt.NumField())
		}
		for i, m := range s.Members {
			if uint32(gt.Field(i).Offset)*8 != uint32(m.Offset) {
				t.Fatalf("%s.%s at bit %d, Go at byte %d", cName, m.Name, m.Offset, gt.Field(i).Offset)
			}
		}
	}
}

// BenchmarkDataPlane: ns/packet for a session hit (a flow translated to
// itself, so the repeats see the same packet) and for a pass-through miss.
func BenchmarkDataPlane(b *testing.B) {
	d := newDP(b)
	// A session that maps the flow onto itself keeps every repeat on the hit path.
	self := pxFlow{Src: [4]byte{10, 18, 0, 2}, Dst: [4]byte{10, 30, 0, 1}, Sport: [2]byte{0x9c, 0x40}, Dport: [2]byte{0, 80}, Proto: 6}
	if err := d.coll.Maps["sessions"].Put(self, pxSession{NewSrc: self.Src, NewDst: self.Dst, Ifindex: 1, MAC: [6]byte(bpftest.MACB)}); err != nil {
		b.Fatal(err)
	}
	frames := map[string][]byte{
		"hit":  tcpFrame(b, "10.18.0.2", "10.30.0.1", 40000, 80),
		"miss": tcpFrame(b, "10.18.0.2", "10.30.99.1", 40000, 80),
	}
	for _, name := range []string{"hit", "miss"} {
		b.Run(name, func(b *testing.B) {
			prog := d.coll.Programs[module.ProgramIngress]
			b.ResetTimer()
			_, per, err := prog.Benchmark(frames[name], b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(per.Nanoseconds()), "ns/packet")
		})
	}
}

var _ = net.IPv4len
