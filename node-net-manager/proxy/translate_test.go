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

type world struct {
	tab    *table.Standalone
	tr     *Translator
	client table.Entry
	web    []table.Entry
	clock  time.Time
}

func newWorld(t *testing.T) *world {
	t.Helper()
	tab, err := table.NewStandalone(table.Options{Range: netip.MustParsePrefix("10.30.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{tab: tab, clock: time.Unix(1000, 0)}
	w.client, _ = tab.Add(table.Instance{ServiceName: "app.ns.client.ns", NsIP: netip.MustParseAddr("10.18.0.2")})
	for i := 0; i < 3; i++ {
		e, _ := tab.Add(table.Instance{ServiceName: "app.ns.web.ns", Instance: i, NsIP: netip.AddrFrom4([4]byte{10, 18, 0, byte(3 + i)})})
		w.web = append(w.web, e)
	}
	w.tr = NewTranslator(tab, Options{Ranges: []netip.Prefix{netip.MustParsePrefix("10.30.0.0/16")}, Timeout: time.Minute})
	w.tr.now = func() time.Time { return w.clock }
	return w
}

func sip(e table.Entry, p table.Policy) string { a, _ := e.ServiceIP(p); return a.String() }

func tcp(t *testing.T, src, dst string, sport, dport uint16, opts ...layers.IPv4Option) []byte {
	ip := bpftest.IPv4(src, dst, layers.IPProtocolTCP)
	ip.Options = opts
	return bpftest.Serialize(t, ip, bpftest.TCP(sport, dport), bpftest.Payload([]byte("hello")))
}

func udp(t *testing.T, src, dst string, sport, dport uint16) []byte {
	return bpftest.Serialize(t, bpftest.IPv4(src, dst, layers.IPProtocolUDP), bpftest.UDP(sport, dport), bpftest.Payload([]byte("x")))
}

// decoded parses a translated packet and checks both checksums against ones
// computed from scratch.
func decoded(t *testing.T, b []byte) (*layers.IPv4, gopacket.Packet) {
	t.Helper()
	pk := gopacket.NewPacket(b, layers.LayerTypeIPv4, gopacket.Default)
	ip := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	fresh := *ip
	var ls []gopacket.SerializableLayer
	ls = append(ls, &fresh)
	wantL4 := uint16(0)
	switch l4 := pk.TransportLayer().(type) {
	case *layers.TCP:
		c := *l4
		ls = append(ls, &c)
		wantL4 = l4.Checksum
	case *layers.UDP:
		c := *l4
		ls = append(ls, &c)
		wantL4 = l4.Checksum
	}
	if app := pk.ApplicationLayer(); app != nil {
		ls = append(ls, gopacket.Payload(app.Payload()))
	}
	// The IPv4 header, options included, sums to 0xffff when its checksum is right.
	var sum uint32
	for i := 0; i < int(ip.IHL)*4; i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if sum != 0xffff {
		t.Fatalf("IPv4 header checksum %#04x is wrong (header sums to %#04x)", ip.Checksum, sum)
	}
	fresh.Options = nil // the pseudo-header does not include options
	fresh.IHL = 5
	re := gopacket.NewPacket(bpftest.Serialize(t, ls...), layers.LayerTypeIPv4, gopacket.Default)
	switch l4 := re.TransportLayer().(type) {
	case *layers.TCP:
		if l4.Checksum != wantL4 {
			t.Fatalf("TCP checksum %#04x, from scratch %#04x", wantL4, l4.Checksum)
		}
	case *layers.UDP:
		if l4.Checksum != wantL4 {
			t.Fatalf("UDP checksum %#04x, from scratch %#04x", wantL4, l4.Checksum)
		}
	}
	return ip, pk
}

func TestRoundRobinAndSessions(t *testing.T) {
	w := newWorld(t)
	rr := sip(w.web[0], table.PolicyRoundRobin)
	var got []string
	for i := 0; i < 4; i++ {
		b := tcp(t, "10.18.0.2", rr, uint16(40000+i), 80)
		if r := w.tr.Translate(b).Drop; r != "" {
			t.Fatalf("dropped: %s", r)
		}
		ip, _ := decoded(t, b)
		if ip.SrcIP.String() != sip(w.client, table.PolicyInstance) {
			t.Fatalf("source %s, want the sender's instance IP", ip.SrcIP)
		}
		got = append(got, ip.DstIP.String())
	}
	want := []string{"10.18.0.3", "10.18.0.4", "10.18.0.5", "10.18.0.3"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("round robin %v, want %v", got, want)
		}
	}
	// The same flow keeps its instance.
	b := tcp(t, "10.18.0.2", rr, 40001, 80)
	w.tr.Translate(b)
	if ip, _ := decoded(t, b); ip.DstIP.String() != "10.18.0.4" {
		t.Fatalf("session not kept: %s", ip.DstIP)
	}
	// The reply is translated back to the service IP and the sender.
	reply := tcp(t, "10.18.0.4", sip(w.client, table.PolicyInstance), 80, 40001)
	if r := w.tr.Translate(reply).Drop; r != "" {
		t.Fatalf("reply dropped: %s", r)
	}
	ip, _ := decoded(t, reply)
	if ip.SrcIP.String() != rr || ip.DstIP.String() != "10.18.0.2" {
		t.Fatalf("reply %s -> %s", ip.SrcIP, ip.DstIP)
	}
	if st := w.tr.Stats(); st.Sessions != 4 || st.NewSessions != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestInstanceIPAndProtocols(t *testing.T) {
	w := newWorld(t)
	inst := sip(w.web[2], table.PolicyInstance)
	b := udp(t, "10.18.0.2", inst, 5000, 7000)
	if r := w.tr.Translate(b).Drop; r != "" {
		t.Fatal(r)
	}
	if ip, _ := decoded(t, b); ip.DstIP.String() != "10.18.0.5" {
		t.Fatalf("instance IP went to %s", ip.DstIP)
	}
	// IPv4 options and a zero UDP checksum.
	withOpts := tcp(t, "10.18.0.2", inst, 1234, 80, layers.IPv4Option{OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}})
	if r := w.tr.Translate(withOpts).Drop; r != "" {
		t.Fatal(r)
	}
	decoded(t, withOpts)
	noSum := udp(t, "10.18.0.2", inst, 5001, 7000)
	noSum[20+6], noSum[20+7] = 0, 0
	w.tr.Translate(noSum)
	if noSum[26] != 0 || noSum[27] != 0 {
		t.Fatal("a zero UDP checksum was filled in")
	}
	// ICMP echo: keyed by identifier, reply translated back.
	echo := bpftest.Serialize(t, bpftest.IPv4("10.18.0.2", inst, layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 9, Seq: 1})
	if r := w.tr.Translate(echo).Drop; r != "" {
		t.Fatal(r)
	}
	rep := bpftest.Serialize(t, bpftest.IPv4("10.18.0.5", sip(w.client, table.PolicyInstance), layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(0, 0), Id: 9, Seq: 1})
	if r := w.tr.Translate(rep).Drop; r != "" {
		t.Fatal(r)
	}
	if ip, _ := decoded(t, rep); ip.SrcIP.String() != inst || ip.DstIP.String() != "10.18.0.2" {
		t.Fatalf("echo reply %s -> %s", ip.SrcIP, ip.DstIP)
	}
}

func TestDrops(t *testing.T) {
	w := newWorld(t)
	rr := sip(w.web[0], table.PolicyRoundRobin)
	cases := []struct {
		name  string
		frame []byte
		want  string
	}{
		{"unknown service IP", tcp(t, "10.18.0.2", "10.30.99.99", 1, 80), DropNoInstances},
		{"outside the service range", tcp(t, "10.18.0.2", "192.0.2.1", 1, 80), DropNotService},
		{"unknown sender", tcp(t, "10.18.0.99", rr, 1, 80), DropUnknownSrc},
		{"not IPv4", []byte{0x60, 0, 0, 0}, DropUnsupported},
		{"truncated TCP", tcp(t, "10.18.0.2", rr, 1, 80)[:30], DropUnsupported},
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
	if st := w.tr.Stats(); st.Dropped[DropNoInstances] != 1 || st.Sessions != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestForgetAndExpire(t *testing.T) {
	w := newWorld(t)
	rr := sip(w.web[0], table.PolicyRoundRobin)
	b := tcp(t, "10.18.0.2", rr, 40000, 80)
	w.tr.Translate(b)
	first, _ := decoded(t, b)
	// The instance goes away: its sessions go; the flow is translated anew.
	_ = w.tab.Remove("app.ns.web.ns", 0)
	w.tr.Forget(netip.MustParseAddr(first.DstIP.String()))
	b = tcp(t, "10.18.0.2", rr, 40000, 80)
	w.tr.Translate(b)
	if again, _ := decoded(t, b); again.DstIP.Equal(first.DstIP) {
		t.Fatalf("flow still goes to the removed instance %s", first.DstIP)
	}
	w.clock = w.clock.Add(2 * time.Minute)
	w.tr.Expire()
	if st := w.tr.Stats(); st.Sessions != 0 {
		t.Fatalf("sessions after expiry: %d", st.Sessions)
	}
}

// A source port reused towards the same instance through another service IP
// displaces the older flow instead of being dropped.
func TestReusedSourcePortReplacesOlderFlow(t *testing.T) {
	w := newWorld(t)
	inst0 := sip(w.web[0], table.PolicyInstance)
	rr := sip(w.web[0], table.PolicyRoundRobin)
	w.tr.Translate(tcp(t, "10.18.0.2", inst0, 40000, 80)) // to web0 by instance IP
	b := tcp(t, "10.18.0.2", rr, 40000, 80)               // round robin picks web0 first too
	if r := w.tr.Translate(b).Drop; r != "" {
		t.Fatalf("dropped: %s", r)
	}
	reply := tcp(t, "10.18.0.3", sip(w.client, table.PolicyInstance), 80, 40000)
	w.tr.Translate(reply)
	if ip, _ := decoded(t, reply); ip.SrcIP.String() != rr {
		t.Fatalf("the reply comes from %s, want the newer flow's service IP %s", ip.SrcIP, rr)
	}
	if st := w.tr.Stats(); st.Replaced != 1 || st.Sessions != 1 {
		t.Fatalf("stats %+v", st)
	}
}
