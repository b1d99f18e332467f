package main

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/oakestra/netmanager/modules/sdwan/sdwanpb"
)

// mk is an IE with a correct length.
func ieV(t pb.IEType, v ...byte) *pb.IE { return &pb.IE{Type: t, Length: uint32(len(v)), Value: v} }

func beU32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func portsV(lo, hi uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, lo), hi)
}

func pdrOf(ies ...*pb.IE) *pb.Rule { return &pb.Rule{Type: pb.RuleType_PDR, Ies: ies} }
func lbrOf(ies ...*pb.IE) *pb.Rule { return &pb.Rule{Type: pb.RuleType_LBR, Ies: ies} }

func wantErrContains(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want an error containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestCheckIE(t *testing.T) {
	sizes := map[pb.IEType]int{
		pb.IEType_RULE_ID: 4, pb.IEType_PRECEDENCE: 4, pb.IEType_PROTOCOL: 1, pb.IEType_TOS: 1,
		pb.IEType_SRC_PORTS: 4, pb.IEType_DST_PORTS: 4, pb.IEType_ACTION: 1, pb.IEType_INTERFACE: 4,
		pb.IEType_WEIGHT: 4, pb.IEType_DEFAULT_CLASS: 1,
	}
	for typ, n := range sizes {
		if err := checkIE(0, ieV(typ, make([]byte, n)...)); err != nil {
			t.Errorf("%s with %d bytes: %v", typ, n, err)
		}
		for _, bad := range []int{0, n - 1, n + 1, 5, 17} {
			if bad == n || bad < 0 {
				continue
			}
			err := checkIE(2, ieV(typ, make([]byte, bad)...))
			if err == nil {
				t.Errorf("%s with %d bytes accepted", typ, bad)
				continue
			}
			if !strings.Contains(err.Error(), "ies[2] ("+typ.String()+")") {
				t.Errorf("%s: error %q does not name the IE", typ, err)
			}
		}
	}
	for _, typ := range []pb.IEType{pb.IEType_SRC_IP, pb.IEType_DST_IP} {
		for n, ok := range map[int]bool{5: true, 17: true, 0: false, 1: false, 4: false, 6: false, 16: false, 18: false} {
			err := checkIE(1, ieV(typ, make([]byte, n)...))
			if (err == nil) != ok {
				t.Errorf("%s with %d bytes: err = %v, want ok=%v", typ, n, err, ok)
			}
			if err != nil && !strings.Contains(err.Error(), "5 (IPv4") {
				t.Errorf("%s: error %q does not give the lengths", typ, err)
			}
		}
	}
	for _, tc := range []struct {
		name string
		ie   *pb.IE
		want []string
	}{
		{"unspecified", ieV(pb.IEType_IE_UNSPECIFIED, 1), []string{"ies[3]", "unknown IE type 0"}},
		{"unknown", ieV(pb.IEType(99), 1, 2, 3, 4), []string{"ies[3]", "unknown IE type 99"}},
		{"length too short", &pb.IE{Type: pb.IEType_RULE_ID, Length: 3, Value: []byte{0, 0, 0, 1}},
			[]string{"ies[3] (RULE_ID)", "length 3 but the value has 4 bytes"}},
		{"length too long", &pb.IE{Type: pb.IEType_PROTOCOL, Length: 2, Value: []byte{6}},
			[]string{"ies[3] (PROTOCOL)", "length 2 but the value has 1 bytes"}},
		{"no value", &pb.IE{Type: pb.IEType_ACTION, Length: 1}, []string{"length 1 but the value has 0 bytes"}},
		{"ip length 4", ieV(pb.IEType_SRC_IP, 10, 0, 0, 1), []string{"ies[3] (SRC_IP)", "length 4"}},
		{"ip length 16", ieV(pb.IEType_DST_IP, make([]byte, 16)...), []string{"ies[3] (DST_IP)", "length 16"}},
		{"u32 as u8", ieV(pb.IEType_WEIGHT, 1), []string{"ies[3] (WEIGHT)", "length 1 must be 4"}},
		{"u8 as u32", ieV(pb.IEType_TOS, 0, 0, 0, 4), []string{"ies[3] (TOS)", "length 4 must be 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErrContains(t, checkIE(3, tc.ie), tc.want...) })
	}
}

// fullPDR has every PDR IE, in encodePDR's order.
func fullPDR() *pb.Rule {
	return pdrOf(
		ieV(pb.IEType_RULE_ID, beU32(7)...),
		ieV(pb.IEType_PRECEDENCE, beU32(100)...),
		ieV(pb.IEType_SRC_IP, 10, 0, 0, 0, 8),
		ieV(pb.IEType_DST_IP, 192, 168, 1, 0, 24),
		ieV(pb.IEType_PROTOCOL, 6),
		ieV(pb.IEType_TOS, 184),
		ieV(pb.IEType_SRC_PORTS, portsV(1024, 65535)...),
		ieV(pb.IEType_DST_PORTS, portsV(443, 443)...),
		ieV(pb.IEType_ACTION, 3),
		ieV(pb.IEType_INTERFACE, beU32(2)...),
	)
}

// v6 is an IPv6 SRC_IP/DST_IP value.
func ip6V(addr string, bits byte) []byte {
	a := netip.MustParseAddr(addr).As16()
	return append(a[:], bits)
}

func TestDecodePDR(t *testing.T) {
	id := ieV(pb.IEType_RULE_ID, beU32(7)...)
	for _, tc := range []struct {
		name string
		r    *pb.Rule
		want Rule
	}{
		{"full", fullPDR(), Rule{ID: 7, Precedence: 100, Src: "10.0.0.0/8", Dst: "192.168.1.0/24", Proto: "6", TOS: intPtr(184),
			SrcPorts: "1024-65535", DstPorts: "443-443", Action: "redirect", Target: "backup"}},
		{"minimal", pdrOf(id, ieV(pb.IEType_ACTION, 1)), Rule{ID: 7, Action: "pass"}},
		{"any order", pdrOf(ieV(pb.IEType_ACTION, 2), ieV(pb.IEType_PRECEDENCE, beU32(0xffffffff)...), ieV(pb.IEType_RULE_ID, beU32(0x01020304)...)),
			Rule{ID: 0x01020304, Precedence: 0xffffffff, Action: "drop"}},
		{"v6 prefixes", pdrOf(id, ieV(pb.IEType_SRC_IP, ip6V("2001:db8::", 32)...), ieV(pb.IEType_DST_IP, ip6V("fd00::1", 128)...),
			ieV(pb.IEType_ACTION, 1)), Rule{ID: 7, Src: "2001:db8::/32", Dst: "fd00::1/128", Action: "pass"}},
		{"host bits masked", pdrOf(id, ieV(pb.IEType_SRC_IP, 10, 1, 2, 3, 8), ieV(pb.IEType_ACTION, 1)),
			Rule{ID: 7, Src: "10.0.0.0/8", Action: "pass"}},
		{"prefix 0 and 32", pdrOf(id, ieV(pb.IEType_SRC_IP, 0, 0, 0, 0, 0), ieV(pb.IEType_DST_IP, 192, 0, 2, 1, 32), ieV(pb.IEType_ACTION, 1)),
			Rule{ID: 7, Src: "0.0.0.0/0", Dst: "192.0.2.1/32", Action: "pass"}},
		{"protocol and tos 0", pdrOf(id, ieV(pb.IEType_PROTOCOL, 0), ieV(pb.IEType_TOS, 0), ieV(pb.IEType_ACTION, 1)),
			Rule{ID: 7, Proto: "0", TOS: intPtr(0), Action: "pass"}},
		{"protocol 255", pdrOf(id, ieV(pb.IEType_PROTOCOL, 255), ieV(pb.IEType_ACTION, 1)), Rule{ID: 7, Proto: "255", Action: "pass"}},
		{"ports big-endian", pdrOf(id, ieV(pb.IEType_SRC_PORTS, 0x12, 0x34, 0xab, 0xcd), ieV(pb.IEType_ACTION, 1)),
			Rule{ID: 7, SrcPorts: "4660-43981", Action: "pass"}},
		{"redirect lan", pdrOf(id, ieV(pb.IEType_ACTION, 3), ieV(pb.IEType_INTERFACE, beU32(0)...)),
			Rule{ID: 7, Action: "redirect", Target: "lan"}},
		{"redirect lbr", pdrOf(id, ieV(pb.IEType_ACTION, 3), ieV(pb.IEType_INTERFACE, beU32(0xffffffff)...)),
			Rule{ID: 7, Action: "redirect", Target: "lbr"}},
		{"redirect wan 1", pdrOf(id, ieV(pb.IEType_ACTION, 3), ieV(pb.IEType_INTERFACE, beU32(1)...)),
			Rule{ID: 7, Action: "redirect", Target: "wan0"}},
		{"redirect wan 3", pdrOf(id, ieV(pb.IEType_ACTION, 3), ieV(pb.IEType_INTERFACE, beU32(3)...)),
			Rule{ID: 7, Action: "redirect", Target: "wan2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodePDR(tc.r, testConfig(), false)
			if err != nil {
				t.Fatalf("decodePDR: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decodePDR\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDecodePDRInvalid(t *testing.T) {
	id := ieV(pb.IEType_RULE_ID, beU32(7)...)
	pass := ieV(pb.IEType_ACTION, 1)
	for _, tc := range []struct {
		name string
		r    *pb.Rule
		del  bool
		want []string
	}{
		{"action 0", pdrOf(id, ieV(pb.IEType_ACTION, 0)), false, []string{"ies[1] (ACTION)", "0 is not"}},
		{"action 4", pdrOf(id, ieV(pb.IEType_ACTION, 4)), false, []string{"ies[1] (ACTION)", "4 is not"}},
		{"action 255", pdrOf(ieV(pb.IEType_ACTION, 255), id), false, []string{"ies[0] (ACTION)", "255 is not"}},
		{"interface past last wan", pdrOf(id, ieV(pb.IEType_ACTION, 3), ieV(pb.IEType_INTERFACE, beU32(4)...)), false,
			[]string{"ies[2] (INTERFACE)", "4 is not", "1-3"}},
		{"interface 0xfffffffe", pdrOf(id, ieV(pb.IEType_ACTION, 3), ieV(pb.IEType_INTERFACE, beU32(0xfffffffe)...)), false,
			[]string{"ies[2] (INTERFACE)", "4294967294 is not"}},
		{"prefix too long v4", pdrOf(id, ieV(pb.IEType_SRC_IP, 10, 0, 0, 0, 33), pass), false,
			[]string{"ies[1] (SRC_IP)", "prefix length 33"}},
		{"prefix too long v6", pdrOf(id, ieV(pb.IEType_DST_IP, ip6V("::", 129)...), pass), false,
			[]string{"ies[1] (DST_IP)", "prefix length 129"}},
		{"duplicate RULE_ID", pdrOf(id, pass, ieV(pb.IEType_RULE_ID, beU32(8)...)), false, []string{"ies[2]", "RULE_ID appears twice"}},
		{"duplicate ACTION", pdrOf(id, pass, ieV(pb.IEType_ACTION, 2)), false, []string{"ies[2]", "ACTION appears twice"}},
		{"duplicate SRC_IP", pdrOf(id, ieV(pb.IEType_SRC_IP, 10, 0, 0, 0, 8), ieV(pb.IEType_SRC_IP, 11, 0, 0, 0, 8), pass), false,
			[]string{"ies[2]", "SRC_IP appears twice"}},
		{"bad length", pdrOf(id, &pb.IE{Type: pb.IEType_PRECEDENCE, Length: 4, Value: []byte{1}}, pass), false,
			[]string{"ies[1] (PRECEDENCE)"}},
		{"unknown type", pdrOf(id, ieV(pb.IEType(42), 1), pass), false, []string{"ies[1]", "unknown IE type 42"}},
		{"weight is not a PDR IE", pdrOf(id, pass, ieV(pb.IEType_WEIGHT, beU32(1)...)), false, []string{"ies[2]", "WEIGHT", "not an IE of a PDR"}},
		{"default class is not a PDR IE", pdrOf(id, pass, ieV(pb.IEType_DEFAULT_CLASS, 1)), false,
			[]string{"ies[2]", "DEFAULT_CLASS", "not an IE of a PDR"}},
		{"missing RULE_ID", pdrOf(pass, ieV(pb.IEType_PRECEDENCE, beU32(1)...)), false, []string{"RULE_ID is required"}},
		{"missing ACTION", pdrOf(id, ieV(pb.IEType_PRECEDENCE, beU32(1)...)), false, []string{"ACTION is required"}},
		{"empty", pdrOf(), false, []string{"RULE_ID is required"}},
		{"delete with ACTION", pdrOf(id, pass), true, []string{"ies[1]", "only RULE_ID", "ACTION"}},
		{"delete with PRECEDENCE first", pdrOf(ieV(pb.IEType_PRECEDENCE, beU32(1)...), id), true, []string{"ies[0]", "only RULE_ID", "PRECEDENCE"}},
		{"delete without RULE_ID", pdrOf(), true, []string{"RULE_ID is required"}},
		{"delete twice RULE_ID", pdrOf(id, id), true, []string{"ies[1]", "RULE_ID appears twice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodePDR(tc.r, testConfig(), tc.del)
			wantErrContains(t, err, tc.want...)
		})
	}
}

// TestDecodePDRRepeats: every PDR IE may occur only once; a second one of
// any type is an error naming the type.
func TestDecodePDRRepeats(t *testing.T) {
	for _, ie := range fullPDR().GetIes() {
		t.Run(ie.GetType().String(), func(t *testing.T) {
			r := fullPDR()
			r.Ies = append(r.Ies, ie)
			_, err := decodePDR(r, testConfig(), false)
			wantErrContains(t, err, "ies[10]", ie.GetType().String()+" appears twice")
		})
	}
}

func TestDecodePDRDelete(t *testing.T) {
	got, err := decodePDR(pdrOf(ieV(pb.IEType_RULE_ID, beU32(42)...)), testConfig(), true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, Rule{ID: 42}) {
		t.Errorf("delete decoded to %+v, want {ID: 42}", got)
	}
}

func TestDecodeLBR(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *pb.Rule
		want LBRConfig
	}{
		{"tos and weights", lbrOf(ieV(pb.IEType_TOS, 184), ieV(pb.IEType_INTERFACE, beU32(1)...), ieV(pb.IEType_WEIGHT, beU32(3)...),
			ieV(pb.IEType_INTERFACE, beU32(2)...), ieV(pb.IEType_WEIGHT, beU32(1)...)),
			LBRConfig{TOS: intPtr(184), Overlays: []Overlay{{"wan0", 3}, {"backup", 1}}}},
		{"default, weight defaults to 1", lbrOf(ieV(pb.IEType_DEFAULT_CLASS, 1), ieV(pb.IEType_INTERFACE, beU32(3)...),
			ieV(pb.IEType_INTERFACE, beU32(1)...), ieV(pb.IEType_WEIGHT, beU32(1000)...)),
			LBRConfig{Default: true, Overlays: []Overlay{{"wan2", 1}, {"wan0", 1000}}}},
		{"class alone", lbrOf(ieV(pb.IEType_TOS, 0)), LBRConfig{TOS: intPtr(0)}},
		{"default alone", lbrOf(ieV(pb.IEType_DEFAULT_CLASS, 1)), LBRConfig{Default: true}},
		{"weight is a big-endian u32", lbrOf(ieV(pb.IEType_TOS, 8), ieV(pb.IEType_INTERFACE, beU32(2)...), ieV(pb.IEType_WEIGHT, 0, 0, 1, 2)),
			LBRConfig{TOS: intPtr(8), Overlays: []Overlay{{"backup", 258}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeLBR(tc.r, testConfig())
			if err != nil {
				t.Fatalf("decodeLBR: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decodeLBR\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDecodeLBRInvalid(t *testing.T) {
	tos := ieV(pb.IEType_TOS, 184)
	for _, tc := range []struct {
		name string
		r    *pb.Rule
		want []string
	}{
		{"weight before interface", lbrOf(tos, ieV(pb.IEType_WEIGHT, beU32(3)...), ieV(pb.IEType_INTERFACE, beU32(1)...)),
			[]string{"ies[1] (WEIGHT)", "follows an INTERFACE"}},
		{"lan interface", lbrOf(tos, ieV(pb.IEType_INTERFACE, beU32(0)...)), []string{"ies[1] (INTERFACE)", "1-3", "not 0"}},
		{"lbr interface", lbrOf(tos, ieV(pb.IEType_INTERFACE, beU32(0xffffffff)...)), []string{"ies[1] (INTERFACE)", "not 4294967295"}},
		{"interface past last wan", lbrOf(tos, ieV(pb.IEType_INTERFACE, beU32(1)...), ieV(pb.IEType_INTERFACE, beU32(4)...)),
			[]string{"ies[2] (INTERFACE)", "not 4"}},
		{"rule id is not an LBR IE", lbrOf(ieV(pb.IEType_RULE_ID, beU32(1)...), tos), []string{"ies[0]", "RULE_ID", "not an IE of an LBR"}},
		{"action is not an LBR IE", lbrOf(tos, ieV(pb.IEType_ACTION, 1)), []string{"ies[1]", "ACTION", "not an IE of an LBR"}},
		{"bad length", lbrOf(tos, ieV(pb.IEType_INTERFACE, 1)), []string{"ies[1] (INTERFACE)", "must be 4"}},
		{"unknown type", lbrOf(ieV(pb.IEType(13), 1)), []string{"ies[0]", "unknown IE type 13"}},
		{"tos twice", lbrOf(tos, ieV(pb.IEType_INTERFACE, beU32(1)...), ieV(pb.IEType_TOS, 8)), []string{"ies[2]", "TOS appears twice"}},
		{"tos twice, same value", lbrOf(tos, tos), []string{"ies[1]", "TOS appears twice"}},
		{"default class twice", lbrOf(ieV(pb.IEType_DEFAULT_CLASS, 1), ieV(pb.IEType_DEFAULT_CLASS, 1)),
			[]string{"ies[1]", "DEFAULT_CLASS appears twice"}},
		{"weight twice for one interface", lbrOf(tos, ieV(pb.IEType_INTERFACE, beU32(1)...), ieV(pb.IEType_WEIGHT, beU32(3)...),
			ieV(pb.IEType_WEIGHT, beU32(4)...)), []string{"ies[3]", "WEIGHT appears twice", "INTERFACE at ies[1]"}},
		{"default class 0", lbrOf(ieV(pb.IEType_DEFAULT_CLASS, 0)), []string{"ies[0] (DEFAULT_CLASS)", "value must be 1, got 0"}},
		{"default class 2", lbrOf(ieV(pb.IEType_DEFAULT_CLASS, 2)), []string{"ies[0] (DEFAULT_CLASS)", "value must be 1, got 2"}},
		{"default class 255 after tos", lbrOf(tos, ieV(pb.IEType_DEFAULT_CLASS, 255)), []string{"ies[1] (DEFAULT_CLASS)", "value must be 1, got 255"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeLBR(tc.r, testConfig())
			wantErrContains(t, err, tc.want...)
		})
	}
}

func TestPDRRoundTrip(t *testing.T) {
	id := ieV(pb.IEType_RULE_ID, beU32(9)...)
	prec := ieV(pb.IEType_PRECEDENCE, beU32(3)...)
	for _, tc := range []struct {
		name string
		r    *pb.Rule
	}{
		{"full", fullPDR()},
		{"pass", pdrOf(id, prec, ieV(pb.IEType_ACTION, 1))},
		{"drop udp dst ports", pdrOf(id, prec, ieV(pb.IEType_PROTOCOL, 17), ieV(pb.IEType_DST_PORTS, portsV(53, 53)...), ieV(pb.IEType_ACTION, 2))},
		{"v6 to lan", pdrOf(id, prec, ieV(pb.IEType_SRC_IP, ip6V("2001:db8:1::", 48)...), ieV(pb.IEType_DST_IP, ip6V("fd00::9", 128)...),
			ieV(pb.IEType_TOS, 0), ieV(pb.IEType_ACTION, 3), ieV(pb.IEType_INTERFACE, beU32(0)...))},
		{"to lbr", pdrOf(id, prec, ieV(pb.IEType_PROTOCOL, 6), ieV(pb.IEType_SRC_PORTS, portsV(0, 1023)...), ieV(pb.IEType_ACTION, 3),
			ieV(pb.IEType_INTERFACE, beU32(0xffffffff)...))},
		{"to wan 3", pdrOf(id, prec, ieV(pb.IEType_DST_IP, 203, 0, 113, 0, 24), ieV(pb.IEType_ACTION, 3), ieV(pb.IEType_INTERFACE, beU32(3)...))},
		{"v4 src /0", pdrOf(id, prec, ieV(pb.IEType_SRC_IP, 0, 0, 0, 0, 0), ieV(pb.IEType_ACTION, 1))},
		{"v4 dst /0", pdrOf(id, prec, ieV(pb.IEType_DST_IP, 0, 0, 0, 0, 0), ieV(pb.IEType_ACTION, 2))},
		{"v6 src /0", pdrOf(id, prec, ieV(pb.IEType_SRC_IP, ip6V("::", 0)...), ieV(pb.IEType_ACTION, 1))},
		{"v6 dst /0", pdrOf(id, prec, ieV(pb.IEType_DST_IP, ip6V("::", 0)...), ieV(pb.IEType_ACTION, 2))},
		{"v4 both /0", pdrOf(id, prec, ieV(pb.IEType_SRC_IP, 0, 0, 0, 0, 0), ieV(pb.IEType_DST_IP, 0, 0, 0, 0, 0), ieV(pb.IEType_ACTION, 1))},
		{"v6 src /0 and dst prefix", pdrOf(id, prec, ieV(pb.IEType_SRC_IP, ip6V("::", 0)...), ieV(pb.IEType_DST_IP, ip6V("fd00::", 8)...),
			ieV(pb.IEType_ACTION, 3), ieV(pb.IEType_INTERFACE, beU32(2)...))},
		{"v4 src prefix and dst /0", pdrOf(id, prec, ieV(pb.IEType_SRC_IP, 10, 0, 0, 0, 8), ieV(pb.IEType_DST_IP, 0, 0, 0, 0, 0),
			ieV(pb.IEType_ACTION, 1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			r, err := decodePDR(tc.r, c, false)
			if err != nil {
				t.Fatalf("decodePDR: %v", err)
			}
			p, err := parseRule(r, c)
			if err != nil {
				t.Fatalf("parseRule(%+v): %v", r, err)
			}
			if got := encodePDR(p, c); !proto.Equal(got, tc.r) {
				t.Errorf("round trip\n got %v\nwant %v", got, tc.r)
			}
		})
	}
}

// TestEncodePDRZeroPrefix: a /0 prefix as the config writes it is encoded
// with its family and field, and decodes to the masked prefix.
func TestEncodePDRZeroPrefix(t *testing.T) {
	for _, tc := range []struct {
		name     string
		r        Rule
		src, dst string // as decoded back
	}{
		{"v4 src", Rule{Src: "0.0.0.0/0"}, "0.0.0.0/0", ""},
		{"v6 dst", Rule{Dst: "::/0"}, "", "::/0"},
		{"v4 host bits", Rule{Dst: "10.1.2.3/0"}, "", "0.0.0.0/0"},
		{"v6 src and dst", Rule{Src: "::/0", Dst: "2001:db8::/32"}, "::/0", "2001:db8::/32"},
		{"v4 src and dst", Rule{Src: "192.0.2.0/24", Dst: "0.0.0.0/0"}, "192.0.2.0/24", "0.0.0.0/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.r.ID, tc.r.Action = 4, "pass"
			got, err := decodePDR(encodePDR(mustRule(t, tc.r), c), c, false)
			if err != nil {
				t.Fatalf("decodePDR(encodePDR(%+v)): %v", tc.r, err)
			}
			if got.Src != tc.src || got.Dst != tc.dst {
				t.Errorf("%+v encoded and decoded: src %q dst %q, want %q %q", tc.r, got.Src, got.Dst, tc.src, tc.dst)
			}
		})
	}
}

func TestLBRRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *pb.Rule
	}{
		{"tos", lbrOf(ieV(pb.IEType_TOS, 184), ieV(pb.IEType_INTERFACE, beU32(1)...), ieV(pb.IEType_WEIGHT, beU32(3)...),
			ieV(pb.IEType_INTERFACE, beU32(3)...), ieV(pb.IEType_WEIGHT, beU32(1000)...))},
		{"default", lbrOf(ieV(pb.IEType_DEFAULT_CLASS, 1), ieV(pb.IEType_INTERFACE, beU32(2)...), ieV(pb.IEType_WEIGHT, beU32(1)...))},
		{"tos 0", lbrOf(ieV(pb.IEType_TOS, 0), ieV(pb.IEType_INTERFACE, beU32(3)...), ieV(pb.IEType_WEIGHT, beU32(5)...),
			ieV(pb.IEType_INTERFACE, beU32(2)...), ieV(pb.IEType_WEIGHT, beU32(6)...), ieV(pb.IEType_INTERFACE, beU32(1)...),
			ieV(pb.IEType_WEIGHT, beU32(7)...))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			l, err := decodeLBR(tc.r, c)
			if err != nil {
				t.Fatalf("decodeLBR: %v", err)
			}
			p, err := parseLBR(l, c)
			if err != nil {
				t.Fatalf("parseLBR(%+v): %v", l, err)
			}
			if got := encodeLBR(p, c); !proto.Equal(got, tc.r) {
				t.Errorf("round trip\n got %v\nwant %v", got, tc.r)
			}
		})
	}
}

func TestIEInterface(t *testing.T) {
	c := testConfig()
	for target, want := range map[string]uint32{"lan": 0, "lbr": 0xffffffff, "wan0": 1, "backup": 2, "wan2": 3} {
		if got := encodeInterface(target, c); got != want {
			t.Errorf("encodeInterface(%q) = %#x, want %#x", target, got, want)
		}
		if back, err := decodeInterface(0, want, c); err != nil || back != target {
			t.Errorf("decodeInterface(%#x) = %q, %v; want %q", want, back, err, target)
		}
	}
}

func answer(rtt time.Duration) probeResult { return probeResult{rtt: rtt} }

var lostProbe = probeResult{lost: true}

func TestHealthRecord(t *testing.T) {
	h := newHealth(Health{DownAfter: 3, UpAfter: 2, Window: 4})
	if !h.up {
		t.Fatal("a new WAN is not up")
	}
	for i, step := range []struct {
		r       probeResult
		up      bool
		changed bool
	}{
		{lostProbe, true, false},
		{lostProbe, true, false},
		{answer(time.Millisecond), true, false}, // resets the losses
		{lostProbe, true, false},
		{lostProbe, true, false},
		{lostProbe, false, true}, // third loss in a row
		{lostProbe, false, false},
		{answer(time.Millisecond), false, false},
		{lostProbe, false, false}, // resets the answers
		{answer(time.Millisecond), false, false},
		{answer(time.Millisecond), true, true}, // second answer in a row
		{answer(time.Millisecond), true, false},
	} {
		if changed := h.record(step.r); changed != step.changed || h.up != step.up {
			t.Fatalf("step %d (%+v): up %v changed %v, want up %v changed %v", i, step.r, h.up, changed, step.up, step.changed)
		}
	}
	if h.answered != 5 {
		t.Errorf("answered = %d, want 5", h.answered)
	}
	if len(h.window) != 4 {
		t.Errorf("window holds %d results, want 4", len(h.window))
	}
}

func TestHealthRecordOne(t *testing.T) {
	h := newHealth(Health{DownAfter: 1, UpAfter: 1, Window: 1})
	if !h.record(lostProbe) || h.up {
		t.Error("one loss does not take a downAfter 1 WAN down")
	}
	if !h.record(answer(time.Millisecond)) || !h.up {
		t.Error("one answer does not bring an upAfter 1 WAN up")
	}
}

func TestHealthMetrics(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name            string
		size            int
		rs              []probeResult
		latency, jitter time.Duration
		loss            float64
	}{
		{"empty", 4, nil, 0, 0, 0},
		{"one answer", 4, []probeResult{answer(5 * ms)}, 5 * ms, 0, 0},
		{"known window", 4, []probeResult{answer(10 * ms), lostProbe, answer(20 * ms), answer(14 * ms)}, 44 * ms / 3, 8 * ms, 25},
		{"all lostProbe", 4, []probeResult{lostProbe, lostProbe}, 0, 0, 100},
		{"oldest falls out", 3, []probeResult{answer(100 * ms), lostProbe, answer(10 * ms), answer(20 * ms), answer(30 * ms)}, 20 * ms, 10 * ms, 0},
		{"loss of window", 5, []probeResult{answer(10 * ms), answer(12 * ms), lostProbe, lostProbe, answer(9 * ms)}, 31 * ms / 3, 5 * ms / 2, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHealth(Health{DownAfter: 100, UpAfter: 1, Window: tc.size})
			for _, r := range tc.rs {
				h.record(r)
			}
			lat, loss, jit := h.metrics()
			if lat != tc.latency || loss != tc.loss || jit != tc.jitter {
				t.Errorf("metrics = latency %v loss %v jitter %v; want %v %v %v", lat, loss, jit, tc.latency, tc.loss, tc.jitter)
			}
		})
	}
}

func TestHealthMeets(t *testing.T) {
	ms := time.Millisecond
	// latency 14.67ms, loss 25%, jitter 8ms
	window := []probeResult{answer(10 * ms), lostProbe, answer(20 * ms), answer(14 * ms)}
	for _, tc := range []struct {
		name string
		sla  *SLA
		want bool
	}{
		{"no sla", nil, true},
		{"all open", &SLA{}, true},
		{"latency met", &SLA{LatencyMs: 15}, true},
		{"latency broken", &SLA{LatencyMs: 14}, false},
		{"loss met at the limit", &SLA{LossPercent: 25}, true},
		{"loss broken", &SLA{LossPercent: 24.9}, false},
		{"jitter met at the limit", &SLA{JitterMs: 8}, true},
		{"jitter broken", &SLA{JitterMs: 7.9}, false},
		{"all met", &SLA{LatencyMs: 20, LossPercent: 30, JitterMs: 10}, true},
		{"one of three broken", &SLA{LatencyMs: 20, LossPercent: 30, JitterMs: 5}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHealth(Health{DownAfter: 3, UpAfter: 1, Window: 4})
			for _, r := range window {
				h.record(r)
			}
			if got := h.meets(tc.sla); got != tc.want {
				t.Errorf("meets(%+v) = %v, want %v", tc.sla, got, tc.want)
			}
		})
	}
	t.Run("down", func(t *testing.T) {
		h := newHealth(Health{DownAfter: 2, UpAfter: 2, Window: 4})
		h.record(lostProbe)
		h.record(lostProbe)
		if h.meets(nil) || h.meets(&SLA{}) {
			t.Error("a down WAN meets an SLA")
		}
		h.record(answer(ms))
		if h.meets(nil) {
			t.Error("a WAN meets an SLA one answer after going down (upAfter 2)")
		}
		h.record(answer(ms))
		if !h.meets(nil) {
			t.Error("a WAN back up does not meet an empty SLA")
		}
	})
}
