package proxy

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/node-net-manager/table"
	"github.com/oakestra/netmanager/test/bpftest"
)

// newWorld6 is newWorld with IPv6: namespace addresses fd00:18::2-5 and
// service IPs from fdff:2000::/64 besides the IPv4 ones.
func newWorld6(t *testing.T) *world {
	t.Helper()
	ranges := []netip.Prefix{netip.MustParsePrefix("10.30.0.0/16"), netip.MustParsePrefix("fdff:2000::/64")}
	tab, err := table.NewStandalone(table.Options{Range: ranges[0], RangeV6: ranges[1]})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{tab: tab, clock: time.Unix(1000, 0)}
	ns6 := func(n byte) netip.Addr { return netip.AddrFrom16([16]byte{0xfd, 0, 0, 0x18, 15: n}) }
	w.client, _ = tab.Add(table.Instance{ServiceName: "app.ns.client.ns", NsIP: netip.MustParseAddr("10.18.0.2"), NsIPv6: ns6(2)})
	for i := 0; i < 3; i++ {
		e, _ := tab.Add(table.Instance{ServiceName: "app.ns.web.ns", Instance: i, NsIP: netip.AddrFrom4([4]byte{10, 18, 0, byte(3 + i)}), NsIPv6: ns6(byte(3 + i))})
		w.web = append(w.web, e)
	}
	w.tr = NewTranslator(tab, Options{Ranges: ranges, Timeout: time.Minute})
	w.tr.now = func() time.Time { return w.clock }
	return w
}

func sip6(e table.Entry, p table.Policy) string { a, _ := e.ServiceIPOf(p, true); return a.String() }

func tcp6(t *testing.T, src, dst string, sport, dport uint16) []byte {
	return bpftest.Serialize(t, bpftest.IPv6(src, dst, layers.IPProtocolTCP), bpftest.TCP(sport, dport), bpftest.Payload([]byte("hello")))
}

// decoded6 parses a translated IPv6 packet and checks its L4 checksum against
// one computed from scratch by gopacket.
func decoded6(t *testing.T, b []byte) *layers.IPv6 {
	t.Helper()
	pk := gopacket.NewPacket(b, layers.LayerTypeIPv6, gopacket.Default)
	ip, ok := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if !ok {
		t.Fatalf("not IPv6: %v", pk)
	}
	fresh := *ip
	ls := []gopacket.SerializableLayer{&fresh}
	var got uint16
	switch l4 := pk.Layer(ip.NextHeader.LayerType()).(type) {
	case *layers.TCP:
		c := *l4
		ls, got = append(ls, &c), l4.Checksum
	case *layers.UDP:
		c := *l4
		ls, got = append(ls, &c), l4.Checksum
	case *layers.ICMPv6:
		c := *l4
		ls, got = append(ls, &c), l4.Checksum
		if echo, ok := pk.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo); ok {
			e := *echo
			ls = append(ls, &e)
		}
	default:
		t.Fatalf("no transport layer: %v", pk)
	}
	if app := pk.ApplicationLayer(); app != nil {
		ls = append(ls, gopacket.Payload(app.Payload()))
	}
	re := gopacket.NewPacket(bpftest.Serialize(t, ls...), layers.LayerTypeIPv6, gopacket.Default)
	var want uint16
	switch l4 := re.Layer(ip.NextHeader.LayerType()).(type) {
	case *layers.TCP:
		want = l4.Checksum
	case *layers.UDP:
		want = l4.Checksum
	case *layers.ICMPv6:
		want = l4.Checksum
	}
	if got != want {
		t.Fatalf("%v checksum %#04x, from scratch %#04x", ip.NextHeader, got, want)
	}
	return ip
}

func TestIPv6RoundRobinAndReply(t *testing.T) {
	w := newWorld6(t)
	rr := sip6(w.web[0], table.PolicyRoundRobin)
	var got []string
	for i := 0; i < 4; i++ {
		b := tcp6(t, "fd00:18::2", rr, uint16(40000+i), 80)
		if r := w.tr.Translate(b).Drop; r != "" {
			t.Fatalf("dropped: %s", r)
		}
		ip := decoded6(t, b)
		if ip.SrcIP.String() != sip6(w.client, table.PolicyInstance) {
			t.Fatalf("source %s, want the sender's IPv6 instance IP", ip.SrcIP)
		}
		got = append(got, ip.DstIP.String())
	}
	want := []string{"fd00:18::3", "fd00:18::4", "fd00:18::5", "fd00:18::3"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("round robin %v, want %v", got, want)
		}
	}
	reply := tcp6(t, "fd00:18::4", sip6(w.client, table.PolicyInstance), 80, 40001)
	if r := w.tr.Translate(reply).Drop; r != "" {
		t.Fatalf("reply dropped: %s", r)
	}
	if ip := decoded6(t, reply); ip.SrcIP.String() != rr || ip.DstIP.String() != "fd00:18::2" {
		t.Fatalf("reply %s -> %s", ip.SrcIP, ip.DstIP)
	}
	// The IPv4 round-robin IP has its own rotation.
	b := tcp(t, "10.18.0.2", sip(w.web[0], table.PolicyRoundRobin), 40000, 80)
	w.tr.Translate(b)
	if ip, _ := decoded(t, b); ip.DstIP.String() != "10.18.0.3" {
		t.Fatalf("IPv4 flow went to %s", ip.DstIP)
	}
}

func TestIPv6InstanceIPUDPAndEcho(t *testing.T) {
	w := newWorld6(t)
	inst := sip6(w.web[2], table.PolicyInstance)
	b := bpftest.Serialize(t, bpftest.IPv6("fd00:18::2", inst, layers.IPProtocolUDP), bpftest.UDP(5000, 7000), bpftest.Payload([]byte("x")))
	if r := w.tr.Translate(b).Drop; r != "" {
		t.Fatal(r)
	}
	if ip := decoded6(t, b); ip.DstIP.String() != "fd00:18::5" {
		t.Fatalf("instance IP went to %s", ip.DstIP)
	}
	echo := func(src, dst string, typ uint8) []byte {
		return bpftest.Serialize(t, bpftest.IPv6(src, dst, layers.IPProtocolICMPv6),
			&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}, &layers.ICMPv6Echo{Identifier: 9, SeqNumber: 1})
	}
	req := echo("fd00:18::2", inst, layers.ICMPv6TypeEchoRequest)
	if r := w.tr.Translate(req).Drop; r != "" {
		t.Fatal(r)
	}
	if ip := decoded6(t, req); ip.DstIP.String() != "fd00:18::5" {
		t.Fatalf("echo went to %s", ip.DstIP)
	}
	rep := echo("fd00:18::5", sip6(w.client, table.PolicyInstance), layers.ICMPv6TypeEchoReply)
	if r := w.tr.Translate(rep).Drop; r != "" {
		t.Fatal(r)
	}
	if ip := decoded6(t, rep); ip.SrcIP.String() != inst || ip.DstIP.String() != "fd00:18::2" {
		t.Fatalf("echo reply %s -> %s", ip.SrcIP, ip.DstIP)
	}
}

func TestIPv6Drops(t *testing.T) {
	w := newWorld6(t)
	rr := sip6(w.web[0], table.PolicyRoundRobin)
	hopByHop := bpftest.Serialize(t, &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolIPv6HopByHop,
		SrcIP: netip.MustParseAddr("fd00:18::2").AsSlice(), DstIP: netip.MustParseAddr(rr).AsSlice()},
		&layers.IPv6HopByHop{Options: []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: make([]byte, 4)}}})
	mldReport := append([]byte(nil), hopByHop...)
	copy(mldReport[24:40], netip.MustParseAddr("ff02::16").AsSlice())
	cases := []struct {
		name  string
		frame []byte
		want  string
	}{
		{"unknown service IP", tcp6(t, "fd00:18::2", "fdff:2000::ffff", 1, 80), DropNoInstances},
		{"outside the service ranges", tcp6(t, "fd00:18::2", "2001:db8::1", 1, 80), DropNotService},
		{"unknown sender", tcp6(t, "fd00:18::99", rr, 1, 80), DropUnknownSrc},
		{"truncated TCP", tcp6(t, "fd00:18::2", rr, 1, 80)[:50], DropUnsupported},
		{"extension header", hopByHop, DropUnsupported},
		{"listener report (not to a service)", mldReport, DropNotService},
	}
	for _, c := range cases {
		b := append([]byte(nil), c.frame...)
		if got := w.tr.Translate(b).Drop; got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
		if string(b) != string(c.frame) {
			t.Errorf("%s: a dropped packet was rewritten", c.name)
		}
	}
}

func TestForgetIPv6(t *testing.T) {
	w := newWorld6(t)
	rr := sip6(w.web[0], table.PolicyRoundRobin)
	b := tcp6(t, "fd00:18::2", rr, 40000, 80)
	w.tr.Translate(b)
	first := decoded6(t, b)
	_ = w.tab.Remove("app.ns.web.ns", 0)
	w.tr.Forget(w.web[0].NsIP, w.web[0].NsIPv6)
	b = tcp6(t, "fd00:18::2", rr, 40000, 80)
	w.tr.Translate(b)
	if again := decoded6(t, b); again.DstIP.Equal(first.DstIP) {
		t.Fatalf("flow still goes to the removed instance %s", first.DstIP)
	}
}

func TestUnreachableIPv6(t *testing.T) {
	syn := tcp6(t, "fd00:18::2", "fdff:2000::99", 40000, 80)
	out := Unreachable(syn)
	pk := gopacket.NewPacket(out, layers.LayerTypeIPv6, gopacket.Default)
	ip, _ := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	icmp, ok := pk.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	if !ok || ip.SrcIP.String() != "fdff:2000::99" || ip.DstIP.String() != "fd00:18::2" || icmp.TypeCode != layers.CreateICMPv6TypeCode(1, 3) {
		t.Fatalf("answer %v", pk)
	}
	if checksum6(out[8:24], out[24:40], protoICMPv6, out[40:]) != 0 {
		t.Fatal("bad ICMPv6 checksum")
	}
	if string(out[48:]) != string(syn) {
		t.Fatal("the answer does not quote the packet")
	}
	errPkt := bpftest.Serialize(t, bpftest.IPv6("fd00:18::2", "fdff:2000::99", layers.IPProtocolICMPv6),
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(1, 0)}, bpftest.Payload(make([]byte, 4)))
	if Unreachable(errPkt) != nil {
		t.Fatal("an ICMPv6 error was answered")
	}
}
