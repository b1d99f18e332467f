package main

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// testConfig has three WANs: wan0 (index 0), backup (1) and wan2 (2).
func testConfig() *Config {
	return &Config{WANs: []WANConfig{
		{Name: "wan0", Interface: "wan0", Peer: "192.0.2.2"},
		{Name: "backup", Interface: "wan1", Peer: "198.51.100.2"},
		{Name: "wan2", Interface: "wan2", Peer: "203.0.113.2"},
	}}
}

func mustRule(t *testing.T, r Rule) *pdr {
	t.Helper()
	p, err := parseRule(r, testConfig())
	if err != nil {
		t.Fatalf("parseRule(%+v): %v", r, err)
	}
	return p
}

var openPorts = [2]uint16{0, 65535}

func TestParseRuleValid(t *testing.T) {
	pfx := netip.MustParsePrefix
	for _, tc := range []struct {
		name string
		r    Rule
		want pdr // Rule is filled from r
	}{
		{"open pass", Rule{ID: 1, Action: "pass"},
			pdr{proto: -1, tos: -1, sport: openPorts, dport: openPorts, action: sdPass}},
		{"drop", Rule{ID: 1, Action: "drop"},
			pdr{proto: -1, tos: -1, sport: openPorts, dport: openPorts, action: sdDrop}},
		{"src masked", Rule{Src: "10.1.2.3/8", Action: "pass"},
			pdr{family: 4, src: pfx("10.0.0.0/8"), proto: -1, tos: -1, sport: openPorts, dport: openPorts, action: sdPass}},
		{"bare v4 address", Rule{Dst: "192.0.2.7", Action: "pass"},
			pdr{family: 4, dst: pfx("192.0.2.7/32"), proto: -1, tos: -1, sport: openPorts, dport: openPorts, action: sdPass}},
		{"bare v6 address", Rule{Src: "2001:db8::1", Action: "pass"},
			pdr{family: 6, src: pfx("2001:db8::1/128"), proto: -1, tos: -1, sport: openPorts, dport: openPorts, action: sdPass}},
		{"v6 src and dst", Rule{Src: "2001:db8::/32", Dst: "fd00::/8", Action: "pass"},
			pdr{family: 6, src: pfx("2001:db8::/32"), dst: pfx("fd00::/8"), proto: -1, tos: -1, sport: openPorts, dport: openPorts, action: sdPass}},
		{"v4 /0 is family only", Rule{Src: "0.0.0.0/0", Action: "pass"},
			pdr{family: 4, proto: -1, tos: -1, sport: openPorts, dport: openPorts, action: sdPass}},
		{"v6 /0 is family only", Rule{Dst: "::/0", Action: "pass"},
			pdr{family: 6, proto: -1, tos: -1, sport: openPorts, dport: openPorts, action: sdPass}},
		{"proto tcp upper case", Rule{Proto: "TCP", Action: "pass"},
			pdr{proto: 6, tos: -1, sport: openPorts, dport: openPorts, action: sdPass}},
		{"proto udp", Rule{Proto: "udp", Action: "pass"},
			pdr{proto: 17, tos: -1, sport: openPorts, dport: openPorts, action: sdPass}},
		{"proto icmp", Rule{Proto: "icmp", Action: "pass"},
			pdr{proto: 1, tos: -1, sport: openPorts, dport: openPorts, action: sdPass}},
		{"proto icmpv6", Rule{Proto: "icmpv6", Action: "pass"},
			pdr{proto: 58, tos: -1, sport: openPorts, dport: openPorts, action: sdPass}},
		{"proto number", Rule{Proto: "47", Action: "pass"},
			pdr{proto: 47, tos: -1, sport: openPorts, dport: openPorts, action: sdPass}},
		{"proto 0", Rule{Proto: "0", Action: "pass"},
			pdr{proto: 0, tos: -1, sport: openPorts, dport: openPorts, action: sdPass}},
		{"tos 0", Rule{TOS: intPtr(0), Action: "pass"},
			pdr{proto: -1, tos: 0, sport: openPorts, dport: openPorts, action: sdPass}},
		{"tos 252", Rule{TOS: intPtr(252), Action: "pass"},
			pdr{proto: -1, tos: 252, sport: openPorts, dport: openPorts, action: sdPass}},
		{"one port", Rule{Proto: "tcp", DstPorts: "443", Action: "pass"},
			pdr{proto: 6, tos: -1, sport: openPorts, dport: [2]uint16{443, 443}, action: sdPass}},
		{"port range with spaces", Rule{Proto: "udp", SrcPorts: "1000 - 2000", Action: "pass"},
			pdr{proto: 17, tos: -1, sport: [2]uint16{1000, 2000}, dport: openPorts, action: sdPass}},
		{"port numbers for tcp", Rule{Proto: "6", SrcPorts: "0-0", DstPorts: "65535", Action: "pass"},
			pdr{proto: 6, tos: -1, sport: [2]uint16{0, 0}, dport: [2]uint16{65535, 65535}, action: sdPass}},
		{"redirect lan", Rule{Action: "redirect", Target: "lan"},
			pdr{proto: -1, tos: -1, sport: openPorts, dport: openPorts, action: sdRedirect, target: sdTargetLAN}},
		{"redirect lbr", Rule{Action: "redirect", Target: "lbr"},
			pdr{proto: -1, tos: -1, sport: openPorts, dport: openPorts, action: sdRedirect, target: sdTargetLBR}},
		{"redirect wan0", Rule{Action: "redirect", Target: "wan0"},
			pdr{proto: -1, tos: -1, sport: openPorts, dport: openPorts, action: sdRedirect, target: 0}},
		{"redirect wan2", Rule{Action: "redirect", Target: "wan2"},
			pdr{proto: -1, tos: -1, sport: openPorts, dport: openPorts, action: sdRedirect, target: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRule(tc.r, testConfig())
			if err != nil {
				t.Fatalf("parseRule: %v", err)
			}
			want := tc.want
			want.Rule = tc.r
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("parseRule(%+v)\n got %+v\nwant %+v", tc.r, *got, want)
			}
		})
	}
}

func TestParseRuleInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Rule
		want []string
	}{
		{"src garbage", Rule{Src: "10.0.0.0/33", Action: "pass"}, []string{"src:", `"10.0.0.0/33"`}},
		{"src word", Rule{Src: "any", Action: "pass"}, []string{"src:", `"any"`}},
		{"dst garbage", Rule{Dst: "10.0.0/8", Action: "pass"}, []string{"dst:", `"10.0.0/8"`}},
		{"families differ", Rule{Src: "10.0.0.0/8", Dst: "2001:db8::/32", Action: "pass"}, []string{"dst:", "family"}},
		{"families differ other way", Rule{Src: "::/0", Dst: "10.0.0.1", Action: "pass"}, []string{"dst:", "family"}},
		{"proto name", Rule{Proto: "gre", Action: "pass"}, []string{"proto:", `"gre"`}},
		{"proto too big", Rule{Proto: "256", Action: "pass"}, []string{"proto:", `"256"`}},
		{"proto negative", Rule{Proto: "-1", Action: "pass"}, []string{"proto:"}},
		{"tos ecn bits", Rule{TOS: intPtr(185), Action: "pass"}, []string{"tos:", "185"}},
		{"tos ecn bit 2", Rule{TOS: intPtr(2), Action: "pass"}, []string{"tos:", "2"}},
		{"tos too big", Rule{TOS: intPtr(256), Action: "pass"}, []string{"tos:", "256"}},
		{"tos negative", Rule{TOS: intPtr(-4), Action: "pass"}, []string{"tos:", "-4"}},
		{"srcPorts reversed", Rule{Proto: "tcp", SrcPorts: "2000-1000", Action: "pass"}, []string{"srcPorts:", `"2000-1000"`}},
		{"dstPorts too big", Rule{Proto: "tcp", DstPorts: "65536", Action: "pass"}, []string{"dstPorts:", `"65536"`}},
		{"dstPorts word", Rule{Proto: "udp", DstPorts: "http", Action: "pass"}, []string{"dstPorts:", `"http"`}},
		{"dstPorts open end", Rule{Proto: "udp", DstPorts: "80-", Action: "pass"}, []string{"dstPorts:"}},
		{"dstPorts negative", Rule{Proto: "udp", DstPorts: "-80", Action: "pass"}, []string{"dstPorts:"}},
		{"ports without proto", Rule{DstPorts: "80", Action: "pass"}, []string{"ports need proto tcp or udp"}},
		{"src ports with icmp", Rule{Proto: "icmp", SrcPorts: "80", Action: "pass"}, []string{"ports need proto tcp or udp"}},
		{"ports with proto 47", Rule{Proto: "47", DstPorts: "80", Action: "pass"}, []string{"ports need proto tcp or udp"}},
		{"no action", Rule{}, []string{"action:", `""`}},
		{"unknown action", Rule{Action: "forward"}, []string{"action:", `"forward"`}},
		{"action case", Rule{Action: "Pass"}, []string{"action:", `"Pass"`}},
		{"target on pass", Rule{Action: "pass", Target: "wan0"}, []string{"target:", "only a redirect"}},
		{"target on drop", Rule{Action: "drop", Target: "lan"}, []string{"target:", "only a redirect"}},
		{"redirect without target", Rule{Action: "redirect"}, []string{"target:", "needs a target"}},
		{"redirect to unknown wan", Rule{Action: "redirect", Target: "wan9"}, []string{"target:", `"wan9"`}},
		{"redirect to interface not name", Rule{Action: "redirect", Target: "wan1"}, []string{"target:", `"wan1"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseRule(tc.r, testConfig())
			if err == nil {
				t.Fatalf("parseRule(%+v) accepted: %+v", tc.r, p)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRulePorts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want [2]uint16
		ok   bool
	}{
		{"", openPorts, true}, {"0", [2]uint16{0, 0}, true}, {"80", [2]uint16{80, 80}, true},
		{"1-65535", [2]uint16{1, 65535}, true}, {" 22 ", [2]uint16{22, 22}, true},
		{"5-4", [2]uint16{}, false}, {"65536", [2]uint16{}, false}, {"1-2-3", [2]uint16{}, false},
		{"x", [2]uint16{}, false}, {"-", [2]uint16{}, false},
	} {
		got, err := parsePorts("dstPorts", tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parsePorts(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "dstPorts: ") {
			t.Errorf("parsePorts(%q) error %q does not name the field", tc.in, err)
		}
	}
}

func TestOverlaps(t *testing.T) {
	tcp, udp := "tcp", "udp"
	for _, tc := range []struct {
		name string
		a, b Rule
		want bool
	}{
		{"both open", Rule{}, Rule{}, true},
		{"v4 and v6 src", Rule{Src: "10.0.0.0/8"}, Rule{Src: "2001:db8::/32"}, false},
		{"v4 src and v6 dst", Rule{Src: "10.0.0.0/8"}, Rule{Dst: "2001:db8::/32"}, false},
		{"v4 family only and v6", Rule{Src: "0.0.0.0/0"}, Rule{Dst: "::/0"}, false},
		{"v4 family only and v4", Rule{Src: "0.0.0.0/0"}, Rule{Dst: "10.0.0.1"}, true},
		{"v4 and open", Rule{Src: "10.0.0.0/8"}, Rule{}, true},
		{"v6 and open", Rule{Dst: "2001:db8::/32"}, Rule{Proto: tcp}, true},
		{"disjoint src", Rule{Src: "10.0.0.0/8"}, Rule{Src: "192.168.0.0/16"}, false},
		{"disjoint dst", Rule{Dst: "10.0.0.0/9"}, Rule{Dst: "10.128.0.0/9"}, false},
		{"disjoint v6", Rule{Dst: "2001:db8::/33"}, Rule{Dst: "2001:db8:8000::/33"}, false},
		{"nested src", Rule{Src: "10.0.0.0/8"}, Rule{Src: "10.1.0.0/16"}, true},
		{"nested dst host", Rule{Dst: "10.0.0.0/8"}, Rule{Dst: "10.1.2.3"}, true},
		{"same src", Rule{Src: "10.0.0.0/8"}, Rule{Src: "10.0.0.0/8"}, true},
		{"src overlaps dst disjoint", Rule{Src: "10.0.0.0/8", Dst: "1.0.0.0/8"}, Rule{Src: "10.0.0.0/8", Dst: "2.0.0.0/8"}, false},
		{"src and dst open crosswise", Rule{Src: "10.0.0.0/8"}, Rule{Dst: "192.168.0.0/16"}, true},
		{"proto differs", Rule{Proto: tcp}, Rule{Proto: udp}, false},
		{"proto same", Rule{Proto: tcp}, Rule{Proto: "6"}, true},
		{"proto and open", Rule{Proto: tcp}, Rule{}, true},
		{"tos differs", Rule{TOS: intPtr(0)}, Rule{TOS: intPtr(184)}, false},
		{"tos same", Rule{TOS: intPtr(184)}, Rule{TOS: intPtr(184)}, true},
		{"tos and open", Rule{TOS: intPtr(184)}, Rule{}, true},
		{"dport disjoint", Rule{Proto: tcp, DstPorts: "80-90"}, Rule{Proto: tcp, DstPorts: "91-100"}, false},
		{"dport touching", Rule{Proto: tcp, DstPorts: "80-90"}, Rule{Proto: tcp, DstPorts: "90-100"}, true},
		{"dport inside", Rule{Proto: tcp, DstPorts: "1-1000"}, Rule{Proto: tcp, DstPorts: "443"}, true},
		{"dport and open", Rule{Proto: tcp, DstPorts: "443"}, Rule{}, true},
		{"sport disjoint", Rule{Proto: udp, SrcPorts: "53"}, Rule{Proto: udp, SrcPorts: "54"}, false},
		{"sport disjoint dport same", Rule{Proto: udp, SrcPorts: "1-10", DstPorts: "53"}, Rule{Proto: udp, SrcPorts: "11-20", DstPorts: "53"}, false},
		{"everything overlaps", Rule{Src: "10.0.0.0/8", Dst: "10.2.0.0/16", Proto: tcp, TOS: intPtr(4), SrcPorts: "1-100", DstPorts: "80"},
			Rule{Src: "10.0.0.0/16", Dst: "10.0.0.0/8", Proto: tcp, TOS: intPtr(4), SrcPorts: "100-200", DstPorts: "1-80"}, true},
		{"everything but tos", Rule{Src: "10.0.0.0/8", Dst: "10.2.0.0/16", Proto: tcp, TOS: intPtr(4), SrcPorts: "1-100", DstPorts: "80"},
			Rule{Src: "10.0.0.0/16", Dst: "10.0.0.0/8", Proto: tcp, TOS: intPtr(8), SrcPorts: "100-200", DstPorts: "1-80"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.a.Action, tc.b.Action = "pass", "pass"
			a, b := mustRule(t, tc.a), mustRule(t, tc.b)
			if got := a.overlaps(b); got != tc.want {
				t.Errorf("overlaps(%+v, %+v) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
			if got := b.overlaps(a); got != tc.want {
				t.Errorf("overlaps(%+v, %+v) = %v, want %v (reversed)", tc.b, tc.a, got, tc.want)
			}
		})
	}
}

func TestCheckRuleSet(t *testing.T) {
	rule := func(id, prec uint32, dst string) *pdr {
		return mustRule(t, Rule{ID: id, Precedence: prec, Dst: dst, Action: "pass"})
	}
	many := func(n int) []*pdr {
		var rs []*pdr
		for i := 0; i < n; i++ {
			rs = append(rs, rule(uint32(i+1), 0, fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)))
		}
		return rs
	}
	for _, tc := range []struct {
		name string
		rs   []*pdr
		want []string // nil: accepted
	}{
		{"empty", nil, nil},
		{"one", []*pdr{rule(1, 0, "")}, nil},
		{"duplicate id", []*pdr{rule(5, 1, "10.0.0.0/8"), rule(6, 2, ""), rule(5, 3, "192.168.0.0/16")},
			[]string{"rule 5", "twice"}},
		{"overlap same precedence", []*pdr{rule(47, 5, "10.0.0.0/8"), rule(2, 1, ""), rule(31, 5, "10.1.0.0/16")},
			[]string{"47", "31", "overlap", "(5)"}},
		{"open and prefix same precedence", []*pdr{rule(8, 0, ""), rule(9, 0, "192.0.2.0/24")}, []string{"8", "9", "overlap"}},
		{"overlap different precedence", []*pdr{rule(1, 5, "10.0.0.0/8"), rule(2, 6, "10.1.0.0/16"), rule(3, 4, "")}, nil},
		{"disjoint same precedence", []*pdr{rule(1, 5, "10.0.0.0/8"), rule(2, 5, "11.0.0.0/8"), rule(3, 5, "2001:db8::/32")}, nil},
		{"256 rules", many(256), nil},
		{"257 rules", many(257), []string{"257", "256"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkRuleSet(tc.rs)
			if tc.want == nil {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseLBR(t *testing.T) {
	ov := func(pairs ...any) []Overlay {
		var out []Overlay
		for i := 0; i+1 < len(pairs); i += 2 {
			out = append(out, Overlay{WAN: pairs[i].(string), Weight: pairs[i+1].(int)})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		l       LBRConfig
		class   int
		weights [sdMaxWANs]int
		err     []string
	}{
		{name: "default", l: LBRConfig{Default: true, Overlays: ov("wan0", 3, "backup", 1)},
			class: sdClassDefault, weights: [sdMaxWANs]int{3, 1}},
		{name: "tos", l: LBRConfig{TOS: intPtr(184), Overlays: ov("wan2", 7)},
			class: 46, weights: [sdMaxWANs]int{2: 7}},
		{name: "tos 0", l: LBRConfig{TOS: intPtr(0), Overlays: ov("backup", 1)},
			class: 0, weights: [sdMaxWANs]int{1: 1}},
		{name: "tos 252", l: LBRConfig{TOS: intPtr(252), Overlays: ov("backup", 1)},
			class: 63, weights: [sdMaxWANs]int{1: 1}},
		{name: "weight bounds", l: LBRConfig{Default: true, Overlays: ov("wan0", 1, "wan2", 1000)},
			class: sdClassDefault, weights: [sdMaxWANs]int{1, 0, 1000}},
		{name: "sla ok", l: LBRConfig{Default: true, Overlays: ov("wan0", 1), SLA: &SLA{LatencyMs: 10, LossPercent: 100, JitterMs: 2}},
			class: sdClassDefault, weights: [sdMaxWANs]int{1}},
		{name: "default and tos", l: LBRConfig{Default: true, TOS: intPtr(0), Overlays: ov("wan0", 1)}, err: []string{"tos:", "not both"}},
		{name: "neither", l: LBRConfig{Overlays: ov("wan0", 1)}, err: []string{"tos:", "needs a tos"}},
		{name: "tos ecn", l: LBRConfig{TOS: intPtr(1), Overlays: ov("wan0", 1)}, err: []string{"tos:", "1 must"}},
		{name: "tos big", l: LBRConfig{TOS: intPtr(256), Overlays: ov("wan0", 1)}, err: []string{"tos:", "256"}},
		{name: "tos negative", l: LBRConfig{TOS: intPtr(-4), Overlays: ov("wan0", 1)}, err: []string{"tos:", "-4"}},
		{name: "no overlays", l: LBRConfig{Default: true}, err: []string{"overlays:", "at least one"}},
		{name: "weight 0", l: LBRConfig{Default: true, Overlays: ov("wan0", 1, "backup", 0)}, err: []string{"overlays[1].weight:", "0"}},
		{name: "weight 1001", l: LBRConfig{Default: true, Overlays: ov("wan0", 1001)}, err: []string{"overlays[0].weight:", "1001"}},
		{name: "weight negative", l: LBRConfig{Default: true, Overlays: ov("wan0", -1)}, err: []string{"overlays[0].weight:"}},
		{name: "duplicate wan", l: LBRConfig{Default: true, Overlays: ov("wan0", 1, "backup", 2, "wan0", 3)},
			err: []string{"overlays[2].wan:", `"wan0"`, "twice"}},
		{name: "unknown wan", l: LBRConfig{Default: true, Overlays: ov("wan0", 1, "wan7", 1)}, err: []string{"overlays[1].wan:", `"wan7"`}},
		{name: "lan is no wan", l: LBRConfig{Default: true, Overlays: ov("lan", 1)}, err: []string{"overlays[0].wan:", `"lan"`}},
		{name: "sla negative latency", l: LBRConfig{Default: true, Overlays: ov("wan0", 1), SLA: &SLA{LatencyMs: -1}}, err: []string{"sla:"}},
		{name: "sla negative jitter", l: LBRConfig{Default: true, Overlays: ov("wan0", 1), SLA: &SLA{JitterMs: -1}}, err: []string{"sla:"}},
		{name: "sla loss over 100", l: LBRConfig{Default: true, Overlays: ov("wan0", 1), SLA: &SLA{LossPercent: 100.5}}, err: []string{"sla:"}},
		{name: "sla negative loss", l: LBRConfig{Default: true, Overlays: ov("wan0", 1), SLA: &SLA{LossPercent: -1}}, err: []string{"sla:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLBR(tc.l, testConfig())
			if tc.err != nil {
				if err == nil {
					t.Fatalf("accepted: %+v", got)
				}
				for _, w := range tc.err {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if got.class != tc.class || got.weights != tc.weights || !reflect.DeepEqual(got.LBRConfig, tc.l) {
				t.Errorf("parseLBR = class %d weights %v %+v; want class %d weights %v", got.class, got.weights, got.LBRConfig,
					tc.class, tc.weights)
			}
		})
	}
}

// count returns how many slots each WAN has.
func slotCount(s []uint8) map[int]int {
	out := map[int]int{}
	for _, w := range s {
		out[int(w)]++
	}
	return out
}

func allEligible(int) bool { return true }

func TestSlots(t *testing.T) {
	t.Run("3:1", func(t *testing.T) {
		s := slots([sdMaxWANs]int{3, 1}, allEligible)
		if got, want := slotCount(s), map[int]int{0: 96, 1: 32}; len(s) != sdLBRSlots || !reflect.DeepEqual(got, want) {
			t.Errorf("slots = %d slots %v, want 128 %v", len(s), got, want)
		}
	})
	t.Run("1:1:1", func(t *testing.T) {
		s := slots([sdMaxWANs]int{1, 1, 1}, allEligible)
		c := slotCount(s)
		if len(s) != sdLBRSlots || len(c) != 3 {
			t.Fatalf("slots = %d slots %v, want 128 over 3 WANs", len(s), c)
		}
		lo, hi := sdLBRSlots, 0
		for _, n := range c {
			lo, hi = min(lo, n), max(hi, n)
		}
		if hi-lo > 1 || c[0]+c[1]+c[2] != sdLBRSlots {
			t.Errorf("shares %v differ by more than 1", c)
		}
	})
	t.Run("single", func(t *testing.T) {
		s := slots([sdMaxWANs]int{7: 5}, allEligible)
		if got := slotCount(s); len(s) != sdLBRSlots || !reflect.DeepEqual(got, map[int]int{7: 128}) {
			t.Errorf("slots = %v", got)
		}
	})
	t.Run("ineligible gets none", func(t *testing.T) {
		s := slots([sdMaxWANs]int{3, 5, 2}, func(w int) bool { return w != 1 })
		if got, want := slotCount(s), map[int]int{0: 77, 2: 51}; len(s) != sdLBRSlots || !reflect.DeepEqual(got, want) {
			t.Errorf("slots = %d slots %v, want 128 %v", len(s), got, want)
		}
	})
	t.Run("nothing eligible", func(t *testing.T) {
		if s := slots([sdMaxWANs]int{3, 1}, func(int) bool { return false }); s != nil {
			t.Errorf("slots = %v, want nil", s)
		}
		if s := slots([sdMaxWANs]int{0, 0, 4}, func(w int) bool { return w != 2 }); s != nil {
			t.Errorf("slots = %v, want nil (the only weighted WAN is ineligible)", s)
		}
		if s := slots([sdMaxWANs]int{}, allEligible); s != nil {
			t.Errorf("slots of no weights = %v, want nil", s)
		}
	})
	t.Run("proportional", func(t *testing.T) {
		for _, w := range [][sdMaxWANs]int{
			{1, 2, 3, 4, 5, 6, 7, 8}, {1000, 1}, {999, 1000, 1}, {7, 0, 13}, {1, 1, 1, 1, 1, 1, 1, 1}, {0, 0, 0, 0, 0, 0, 0, 9},
		} {
			s := slots(w, allEligible)
			c := slotCount(s)
			total := 0
			for _, n := range w {
				total += n
			}
			if len(s) != sdLBRSlots {
				t.Errorf("%v: %d slots", w, len(s))
			}
			for i, n := range w {
				exact := float64(n*sdLBRSlots) / float64(total)
				if d := float64(c[i]) - exact; d <= -1 || d >= 1 {
					t.Errorf("%v: WAN %d has %d slots, exact share %.2f", w, i, c[i], exact)
				}
				if n == 0 && c[i] != 0 {
					t.Errorf("%v: WAN %d has weight 0 and %d slots", w, i, c[i])
				}
			}
		}
	})
}
