package main

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
)

func eth() *layers.Ethernet { return bpftest.Eth(layers.EthernetTypeIPv4) }

func tcpFrame(t testing.TB, src, dst string, sport, dport uint16, opts ...layers.IPv4Option) []byte {
	ip := bpftest.IPv4(src, dst, layers.IPProtocolTCP)
	ip.Options = opts
	return bpftest.Serialize(t, eth(), ip, bpftest.TCP(sport, dport), bpftest.Payload([]byte("data")))
}

// checkMACs checks that a redirected frame goes from the bridge to dmac.
func checkMACs(t *testing.T, pk gopacket.Packet, dmac byte) {
	t.Helper()
	e := pk.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if e.DstMAC[5] != dmac || !reflect.DeepEqual([]byte(e.SrcMAC), gwMAC[:]) {
		t.Fatalf("MACs %s -> %s", e.SrcMAC, e.DstMAC)
	}
}

// check parses an output frame: addresses, MACs, and both checksums against
// ones computed from scratch.
func check(t *testing.T, out []byte, src, dst string, dmac byte) {
	t.Helper()
	pk := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	checkMACs(t, pk, dmac)
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
	checkL4(t, pk, fresh, eth())
}

// checkL4 compares the L4 checksum of a packet with one computed from
// scratch over the same transport layer under the fresh network header.
func checkL4(t *testing.T, pk gopacket.Packet, fresh gopacket.SerializableLayer, e *layers.Ethernet) {
	t.Helper()
	var got, want uint16
	switch l4 := pk.TransportLayer().(type) {
	case *layers.TCP:
		c := *l4
		re := bpftest.Decode(bpftest.Serialize(t, e, fresh, &c, gopacket.Payload(l4.Payload)))
		got, want = l4.Checksum, re.Layer(layers.LayerTypeTCP).(*layers.TCP).Checksum
	case *layers.UDP:
		c := *l4
		re := bpftest.Decode(bpftest.Serialize(t, e, fresh, &c, gopacket.Payload(l4.Payload)))
		got, want = l4.Checksum, re.Layer(layers.LayerTypeUDP).(*layers.UDP).Checksum
	default:
		l := pk.Layer(layers.LayerTypeICMPv6)
		if l == nil {
			return // ICMPv4: its checksum does not cover the addresses
		}
		ic := l.(*layers.ICMPv6)
		re := bpftest.Decode(bpftest.Serialize(t, e, fresh, &layers.ICMPv6{TypeCode: ic.TypeCode}, gopacket.Payload(ic.Payload)))
		got, want = ic.Checksum, re.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6).Checksum
	}
	if got != want {
		t.Fatalf("L4 checksum %#04x, from scratch %#04x", got, want)
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
	if h, n := d.stat(t, statHit), d.stat(t, statNew); h != 2 || n != 4 {
		t.Fatalf("hits %d, new sessions %d; want 2, 4", h, n)
	}
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

// A TCP checksum of 0 is a value like any other (only UDP uses 0 for "none"):
// it is updated, not skipped.
func TestTCPChecksumZero(t *testing.T) {
	d := newDP(t)
	for sport := uint16(1); sport != 0; sport++ {
		f := tcpFrame(t, "10.18.0.2", "10.30.0.10", sport, 80)
		if f[14+20+16] != 0 || f[14+20+17] != 0 {
			continue
		}
		v, out := d.run(t, f)
		if v != redirect {
			t.Fatalf("verdict %s", bpftest.Verdict(v))
		}
		check(t, out, "10.30.0.2", "10.18.0.3", 3)
		return
	}
	t.Fatal("no source port gives a zero TCP checksum")
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
		"ipv6 outside the range":       bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv6), bpftest.IPv6("fd00::1", "fd00::2", layers.IPProtocolTCP), bpftest.TCP(1, 2)),
		"icmp unreachable, no quote":   bpftest.Serialize(t, eth(), bpftest.IPv4("10.18.0.2", "10.30.0.1", layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 1)}),
	}
	for name, f := range cases {
		v, out := d.run(t, f)
		if v != next || string(out) != string(f) {
			t.Errorf("%s: %s, changed=%v", name, bpftest.Verdict(v), string(out) != string(f))
		}
	}
	if n := d.stat(t, statMalformed); n != 2 { // truncated TCP, the error without a quote
		t.Fatalf("malformed count %d, want 2", n)
	}
	if n := d.stat(t, statPass); n != 2 {
		t.Fatalf("passed count %d, want 2", n)
	}
}

func TestConfig(t *testing.T) {
	s, err := MapSizes(json.RawMessage(`{"maxSessions": 1000, "serviceRangeV6": "fd99::/48"}`))
	if err != nil || s["sessions"] != 1000 || s["sessions6"] != 1000 || s["backends6"] != 4*4096 {
		t.Fatalf("%v %v", s, err)
	}
	for _, bad := range []string{`{"serviceRange": "fd00::/64"}`, `{"serviceRange": "10.30.0.1/16"}`, `{"maxSessions": 0}`, `[]`,
		`{"serviceRangeV6": "10.30.0.0/16"}`, `{"serviceRangeV6": "fdff:2000::1/64"}`, `{"serviceRangeV6": "::ffff:10.30.0.0/112"}`, `{"serviceRangeV6": "fdff::"}`} {
		if _, err := MapSizes(json.RawMessage(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	for cfg, want := range map[string][2]uint32{`{"maxSessions": 8388608}`: {1 << 23, 1 << 23}, `{"maxSessions": 2097152, "maxSessionsV6": 1024}`: {1 << 21, 1024}} {
		if s, err := MapSizes(json.RawMessage(cfg)); err != nil || [2]uint32{s["sessions"], s["sessions6"]} != want {
			t.Errorf("%s: sessions, sessions6 %d, %d, want %v (%v)", cfg, s["sessions"], s["sessions6"], want, err)
		}
	}
	// Out of range: a 400 (module.ErrInvalidConfig) that names the key.
	for cfg, key := range map[string]string{`{"maxSessions": 8388609}`: "maxSessions 8388609 is out of range", `{"maxSessions": 1}`: "maxSessions 1 ",
		`{"maxSessionsV6": 0}`: "maxSessionsV6 0 ", `{"maxSessions": 4294967295}`: "maxSessions ", `{"maxSessions": -1}`: "maxSessions",
		`{"maxServices": 0}`: "maxServices", `{"maxPeers": 0}`: "maxPeers", `{"missRateEntries": 0}`: "missRateEntries"} {
		if _, err := MapSizes(json.RawMessage(cfg)); !errors.Is(err, module.ErrInvalidConfig) || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: %v, want an invalid config naming %q", cfg, err, key)
		}
	}
	c := configValue(testRng, netip.MustParsePrefix("fdff:2000::/56"), gwMAC)
	if c.Range6Mask != [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff} || c.Range6Addr[1] != 0xff || c.RangeMask != [4]byte{255, 255, 0, 0} {
		t.Fatalf("config value %+v", c)
	}
}

// The service ranges follow the node's unless the config names them.
func TestConfigDefaultsToTheNodesRanges(t *testing.T) {
	node := []netip.Prefix{netip.MustParsePrefix("10.40.0.0/16"), netip.MustParsePrefix("fdff:40::/64")}
	s, err := parseConfig(json.RawMessage("null"), node)
	if err != nil || s.rng != node[0] || s.rng6 != node[1] {
		t.Fatalf("null config on a node with %v: %v %v, %v", node, s.rng, s.rng6, err)
	}
	s, err = parseConfig(json.RawMessage(`{"serviceRange": "10.50.0.0/16"}`), node)
	if err != nil || s.rng.String() != "10.50.0.0/16" || s.rng6 != node[1] {
		t.Fatalf("explicit serviceRange: %v %v, %v", s.rng, s.rng6, err)
	}
	s, err = parseConfig(json.RawMessage("null"), nil)
	if err != nil || s.rng.String() != "10.30.0.0/16" || s.rng6.String() != "fdff::/16" {
		t.Fatalf("no node ranges: %v %v, %v", s.rng, s.rng6, err)
	}
}

// TestStructsMatchC compares the Go mirrors with the C structs' BTF: the
// module object's, and for structs it never names in a map (the ring buffer's
// event) that of proxy.h compiled on its own with a variable of each.
func TestStructsMatchC(t *testing.T) {
	spec, err := ebpf.LoadCollectionSpec(bpftest.ModuleObject(t, "modules", "proxy"))
	if err != nil {
		t.Fatal(err)
	}
	mirrors := map[string]any{"px_config": pxConfig{}, "px_service": pxService{}, "px_backend_key": pxBackendKey{},
		"px_backend": pxBackend{}, "px_flow": pxFlow{}, "px_session": pxSession{},
		"px_backend_key6": pxBackendKey6{}, "px_backend6": pxBackend6{}, "px_flow6": pxFlow6{}, "px_session6": pxSession6{},
		"px_miss": pxMiss{}, "px_peer": pxPeer{}, "px_nexthop": pxNexthop{}}
	src := "#include <linux/bpf.h>\n#include \"" + filepath.Join(bpftest.RepoRoot(t), "modules", "proxy", "proxy.h") + "\"\n"
	for cName := range mirrors {
		src += "struct " + cName + " v_" + cName + ";\n"
	}
	file := filepath.Join(t.TempDir(), "layout.c")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	header, err := ebpf.LoadCollectionSpec(bpftest.Compile(t, file))
	if err != nil {
		t.Fatal(err)
	}
	for cName, v := range mirrors {
		var s *btf.Struct
		if err := spec.Types.TypeByName(cName, &s); err != nil {
			if err := header.Types.TypeByName(cName, &s); err != nil {
				t.Fatal(err)
			}
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
	if n := spec.Maps["stats"].MaxEntries; int(n) != len(statNames) {
		t.Fatalf("stats has %d entries, statNames %d", n, len(statNames))
	}
}
