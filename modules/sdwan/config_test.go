package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// loadConfig runs what New and MapSizes run before touching interfaces.
func loadConfig(raw string) (Config, error) {
	c, d, err := readConfig(json.RawMessage(raw))
	if err == nil {
		err = c.validateTop(d)
	}
	return c, err
}

func intPtr(v int) *int { return &v }

const validYAML = `lan: [eth0, eth1]
wans:
  - interface: wan0
    peer: 192.0.2.2
  - name: backup
    interface: wan1
    local: 198.51.100.1
    peer: 198.51.100.2
    nexthop: 198.51.100.254
    mtu: 1400
    tos: "0x10"
    ttl: 32
rules:
  - id: 1
    precedence: 10
    dst: 10.0.0.0/8
    proto: tcp
    tos: 184
    dstPorts: "80-443"
    action: redirect
    target: backup
lbr:
  - default: true
    overlays:
      - wan: wan0
        weight: 3
      - wan: backup
        weight: 1
    sla:
      latencyMs: 50
      lossPercent: 5
`

// validJSON is validYAML's content as JSON.
const validJSON = `{
  "lan": ["eth0", "eth1"],
  "wans": [
    {"interface": "wan0", "peer": "192.0.2.2"},
    {"name": "backup", "interface": "wan1", "local": "198.51.100.1", "peer": "198.51.100.2",
     "nexthop": "198.51.100.254", "mtu": 1400, "tos": "0x10", "ttl": 32}
  ],
  "rules": [
    {"id": 1, "precedence": 10, "dst": "10.0.0.0/8", "proto": "tcp", "tos": 184, "dstPorts": "80-443",
     "action": "redirect", "target": "backup"}
  ],
  "lbr": [
    {"default": true, "overlays": [{"wan": "wan0", "weight": 3}, {"wan": "backup", "weight": 1}],
     "sla": {"latencyMs": 50, "lossPercent": 5}}
  ]
}`

// validWant is what validYAML decodes to, defaults filled.
func validWant() Config {
	return Config{
		LAN: []string{"eth0", "eth1"},
		WANs: []WANConfig{
			{Name: "wan0", Interface: "wan0", Peer: "192.0.2.2", TTL: 64},
			{Name: "backup", Interface: "wan1", Local: "198.51.100.1", Peer: "198.51.100.2", Nexthop: "198.51.100.254",
				MTU: 1400, TOS: "0x10", TTL: 32},
		},
		DefaultPolicy: "pass",
		Rules: []Rule{{ID: 1, Precedence: 10, Dst: "10.0.0.0/8", Proto: "tcp", TOS: intPtr(184), DstPorts: "80-443",
			Action: "redirect", Target: "backup"}},
		LBR: []LBRConfig{{Default: true, Overlays: []Overlay{{WAN: "wan0", Weight: 3}, {WAN: "backup", Weight: 1}},
			SLA: &SLA{LatencyMs: 50, LossPercent: 5}}},
		Health: Health{Interval: Duration{100 * time.Millisecond}, Timeout: Duration{300 * time.Millisecond},
			DownAfter: 3, UpAfter: 3, Window: 20},
		GRPC:           "127.0.0.1:50051",
		MaxFlows:       65536,
		MaxNexthops:    1024,
		NexthopRefresh: Duration{time.Second},
	}
}

func TestConfigValidYAMLAndJSON(t *testing.T) {
	want := validWant()
	for _, tc := range []struct{ name, raw string }{{"yaml", validYAML}, {"json", validJSON}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadConfig(tc.raw)
			if err != nil {
				t.Fatalf("valid config: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("config\n got %+v\nwant %+v", got, want)
			}
		})
	}
	y, _ := loadConfig(validYAML)
	j, _ := loadConfig(validJSON)
	if !reflect.DeepEqual(y, j) {
		t.Errorf("YAML and JSON differ:\nyaml %+v\njson %+v", y, j)
	}
}

func TestConfigOverridesDefaults(t *testing.T) {
	raw := `lan: [eth0]
wans:
  - interface: wan0
    peer: 192.0.2.2
    ttl: 255
defaultPolicy: drop
grpc: "off"
maxFlows: 1000
maxNexthops: 4096
nexthopRefresh: 0s
health:
  interval: 0s
  timeout: 0s
  downAfter: 5
  upAfter: 2
  window: 1000
`
	got, err := loadConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := Health{DownAfter: 5, UpAfter: 2, Window: 1000}
	if got.DefaultPolicy != "drop" || got.GRPC != "off" || got.MaxFlows != 1000 || got.Health != want ||
		got.WANs[0].TTL != 255 || got.WANs[0].Name != "wan0" || got.MaxNexthops != 4096 || got.NexthopRefresh.Duration != 0 {
		t.Errorf("config %+v", got)
	}
}

func TestConfigHealthPartial(t *testing.T) {
	raw := "lan: [eth0]\nwans:\n  - {interface: wan0, peer: 192.0.2.2}\nhealth:\n  interval: 50\n  window: 5\n"
	got, err := loadConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := Health{Interval: Duration{50 * time.Millisecond}, Timeout: Duration{300 * time.Millisecond},
		DownAfter: 3, UpAfter: 3, Window: 5}
	if got.Health != want {
		t.Errorf("health %+v, want %+v (a number is milliseconds, unset fields keep defaults)", got.Health, want)
	}
}

func TestConfigDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"250ms", 250 * time.Millisecond, true},
		{"1.5s", 1500 * time.Millisecond, true},
		{"20", 20 * time.Millisecond, true},
		{"0.5", 500 * time.Microsecond, true},
		{`"20"`, 0, false}, // a string needs a unit
		{"fast", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			c, _, err := readConfig(json.RawMessage("health:\n  timeout: " + tc.in + "\n"))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && c.Health.Timeout.Duration != tc.want {
				t.Errorf("timeout %v, want %v", c.Health.Timeout.Duration, tc.want)
			}
		})
	}
	b, err := json.Marshal(Duration{1500 * time.Millisecond})
	if err != nil || string(b) != `"1.5s"` {
		t.Errorf("MarshalJSON = %s, %v", b, err)
	}
}

func wanList(n int) string {
	var b strings.Builder
	b.WriteString("lan: [eth0]\nwans:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - interface: wan%d\n    peer: 192.0.2.%d\n", i, i+1)
	}
	return b.String()
}

const oneWAN = "lan: [eth0]\nwans:\n  - interface: wan0\n    peer: 192.0.2.2\n"

func TestConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		want []string // substrings of the error
	}{
		{"unknown top field", oneWAN + "colour: red\n", []string{"colour", "line 5"}},
		{"unknown wan field", oneWAN + "    colour: red\n", []string{"colour", "line 5", "WANConfig"}},
		{"unknown json field", `{"lan": ["eth0"], "wan": []}`, []string{"field wan", "line 1"}},
		{"yaml syntax", "lan: [eth0\nwans: []\n", []string{"yaml", "line 1"}},
		{"yaml syntax later line", oneWAN + "grpc: a: b\n", []string{"yaml", "line 5"}},
		{"json syntax", "{\n  \"lan\": [\"eth0\"],\n  \"wans\": [\n}", []string{"yaml", "line"}},
		{"duplicate key", "lan: [eth0]\nlan: [eth1]\n", []string{`"lan"`, "line 2"}},
		{"wrong type", oneWAN + "    mtu: big\n", []string{"wans[0].mtu (line 5)", "big"}},
		{"wrong type in one-line JSON", `{"lan": ["eth0"], "wans": [{"name": "a", "interface": "eth1", "peer": "192.0.2.2"}, {"name": "b", "interface": "eth2", "peer": "192.0.2.6", "mtu": "big"}]}`, []string{"wans[1].mtu (line 1)", "big"}},
		{"wrong type top level", `{"lan": ["eth0"], "maxFlows": "many"}`, []string{"maxFlows (line 1)", "many"}},
		{"wrong type rule id", `{"lan": ["eth0"], "rules": [{"id": "one"}]}`, []string{"rules[0].id (line 1)", "one"}},
		{"a string for a list", `{"lan": "eth0"}`, []string{"lan (line 1)", "eth0"}},
		{"defaultPolicy", oneWAN + "defaultPolicy: maybe\n", []string{"defaultPolicy (line 5)", `"maybe"`}},
		{"maxFlows zero", oneWAN + "maxFlows: 0\n", []string{"maxFlows (line 5)"}},
		{"maxFlows too big", oneWAN + "maxFlows: 16777217\n", []string{"maxFlows (line 5)", "16777217"}},
		{"maxNexthops zero", oneWAN + "maxNexthops: 0\n", []string{"maxNexthops (line 5)", "power of two"}},
		{"maxNexthops not a power of two", oneWAN + "maxNexthops: 1000\n", []string{"maxNexthops (line 5)", "1000"}},
		{"maxNexthops too big", oneWAN + "maxNexthops: 131072\n", []string{"maxNexthops (line 5)", "131072"}},
		{"nexthopRefresh negative", oneWAN + "nexthopRefresh: -1s\n", []string{"nexthopRefresh (line 5)"}},
		{"health interval negative", oneWAN + "health:\n  interval: -1ms\n", []string{"health.interval (line 6)"}},
		{"health timeout zero", oneWAN + "health:\n  timeout: 0s\n", []string{"health.timeout (line 6)"}},
		{"health interval word", oneWAN + "health:\n  interval: fast\n", []string{"health.interval (line 6)", `"fast"`, "not a duration"}},
		{"health timeout string without unit", oneWAN + "health:\n  downAfter: 2\n  timeout: \"20\"\n",
			[]string{"health.timeout (line 7)", `"20"`}},
		{"health interval flow mapping", oneWAN + "health: {window: 5, interval: 5 parsecs}\n", []string{"health.interval (line 5)", `"5 parsecs"`}},
		{"health interval a mapping", oneWAN + "health:\n  interval:\n    ms: 5\n", []string{"health.interval (line 7)", "mapping"}},
		{"health timeout a list", oneWAN + "health:\n  timeout: [1, 2]\n", []string{"health.timeout (line 6)", "sequence"}},
		{"json health interval", "{\n  \"lan\": [\"eth0\"],\n  \"wans\": [{\"interface\": \"wan0\", \"peer\": \"192.0.2.2\"}],\n" +
			"  \"health\": {\"interval\": \"soon\"}\n}", []string{"health.interval (line 4)", `"soon"`}},
		{"health downAfter", oneWAN + "health:\n  downAfter: 0\n", []string{"health.downAfter (line 6)"}},
		{"health upAfter", oneWAN + "health:\n  upAfter: 0\n", []string{"health.upAfter (line 6)"}},
		{"health window zero", oneWAN + "health:\n  window: 0\n", []string{"health.window (line 6)"}},
		{"health window big", oneWAN + "health:\n  window: 1001\n", []string{"health.window (line 6)"}},
		{"grpc host only", oneWAN + "grpc: localhost\n", []string{"grpc (line 5)", `"localhost"`}},
		{"grpc no port", oneWAN + "grpc: 127.0.0.1\n", []string{"grpc (line 5)"}},
		{"no lan", "wans:\n  - interface: wan0\n    peer: 192.0.2.2\n", []string{"lan (line 1)", "LAN"}},
		{"empty lan", "wans:\n  - interface: wan0\n    peer: 192.0.2.2\nlan: []\n", []string{"lan (line 4)"}},
		{"no wans", "lan: [eth0]\nwans: []\n", []string{"wans (line 2)", "not 0"}},
		{"9 wans", wanList(9), []string{"wans (line 3)", "not 9"}},
		{"lan twice", "lan: [eth0, eth0]\nwans:\n  - interface: wan0\n    peer: 192.0.2.2\n",
			[]string{"lan (line 1)", `"eth0"`, "twice"}},
		{"wan interface is lan", "lan: [eth0]\nwans:\n  - interface: eth0\n    peer: 192.0.2.2\n",
			[]string{"wans[0].interface (line 3)", `"eth0"`}},
		{"wan interface twice", oneWAN + "  - interface: wan0\n    peer: 192.0.2.3\n",
			[]string{"wans[1].interface (line 5)", `"wan0"`}},
		{"wan without interface", "lan: [eth0]\nwans:\n  - peer: 192.0.2.2\n", []string{"wans[0].interface (line 3)"}},
		{"wan without peer", oneWAN + "  - interface: wan1\n    mtu: 1500\n", []string{"wans[1].peer (line 5)"}},
		{"peer ipv6", "lan: [eth0]\nwans:\n  - interface: wan0\n    peer: 2001:db8::1\n",
			[]string{"wans[0].peer (line 4)", `"2001:db8::1"`, "IPv4"}},
		{"peer not an address", "lan: [eth0]\nwans:\n  - interface: wan0\n    peer: gateway\n",
			[]string{"wans[0].peer (line 4)", `"gateway"`}},
		{"local ipv6", oneWAN + "    local: ::1\n", []string{"wans[0].local (line 5)"}},
		{"nexthop bad", oneWAN + "    nexthop: 10.0.0\n", []string{"wans[0].nexthop (line 5)"}},
		{"name reserved lan", oneWAN + "    name: lan\n", []string{"wans[0].name (line 5)", `"lan"`}},
		{"name reserved lbr", oneWAN + "    name: lbr\n", []string{"wans[0].name (line 5)", `"lbr"`}},
		{"name twice", oneWAN + "    name: a\n  - interface: wan1\n    name: a\n    peer: 192.0.2.3\n",
			[]string{"wans[1].name (line 7)", `"a"`}},
		{"name is other wan's default", oneWAN + "  - interface: wan1\n    name: wan0\n    peer: 192.0.2.3\n",
			[]string{"wans[1].name (line 6)"}},
		{"mtu small", oneWAN + "    mtu: 100\n", []string{"wans[0].mtu (line 5)", "100"}},
		{"mtu big", oneWAN + "    mtu: 65536\n", []string{"wans[0].mtu (line 5)", "65536"}},
		{"tos big", oneWAN + "    tos: 300\n", []string{"wans[0].tos (line 5)", `"300"`}},
		{"tos word", oneWAN + "    tos: copy\n", []string{"wans[0].tos (line 5)", `"copy"`}},
		{"ttl big", oneWAN + "    ttl: 256\n", []string{"wans[0].ttl (line 5)", "256"}},
		{"ttl negative", oneWAN + "    ttl: -1\n", []string{"wans[0].ttl (line 5)"}},
		{"json peer", "{\n  \"lan\": [\"eth0\"],\n  \"wans\": [\n    {\"interface\": \"wan0\", \"peer\": \"fe80::1\"}\n  ]\n}",
			[]string{"wans[0].peer (line 4)"}},
		{"json one line", `{"lan": ["eth0"], "wans": [{"interface": "wan0", "peer": "192.0.2.2", "mtu": 10}]}`,
			[]string{"wans[0].mtu (line 1)"}},
		{"empty", "", []string{"needs a config"}},
		{"null", "null", []string{"needs a config"}},
		{"not a mapping", "[1, 2]", []string{"line 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(tc.raw)
			if err == nil {
				t.Fatalf("config accepted:\n%s", tc.raw)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestConfigValidEdges(t *testing.T) {
	for _, tc := range []struct{ name, raw string }{
		{"8 wans", wanList(8)},
		{"mtu bounds", oneWAN + "    mtu: 576\n  - {interface: wan1, peer: 192.0.2.3, mtu: 65535}\n"},
		{"tos number", oneWAN + "    tos: 184\n"},
		{"tos inherit", oneWAN + "    tos: inherit\n"},
		{"tos hex", oneWAN + "    tos: \"0xff\"\n"},
		{"maxFlows bounds", oneWAN + "maxFlows: 16777216\n"},
		{"maxNexthops bounds", oneWAN + "maxNexthops: 65536\n"},
		{"maxNexthops one", oneWAN + "maxNexthops: 1\n"},
		{"grpc ipv6", oneWAN + "grpc: \"[::1]:9000\"\n"},
		{"probing off without timeout", oneWAN + "health:\n  interval: 0s\n  timeout: 0s\n"},
		{"json tabs", "{\n\t\"lan\": [\"eth0\"],\n\t\"wans\": [{\"interface\": \"wan0\", \"peer\": \"192.0.2.2\"}]\n}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := loadConfig(tc.raw); err != nil {
				t.Errorf("valid config refused: %v", err)
			}
		})
	}
}

func TestConfigParseOuterTOS(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint32
		ok   bool
	}{
		{"", sdTosInherit, true}, {"inherit", sdTosInherit, true}, {"0", 0, true}, {"255", 255, true},
		{"0x2e", 0x2e, true}, {"256", 0, false}, {"-1", 0, false}, {"copy", 0, false},
	} {
		got, err := parseOuterTOS(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseOuterTOS(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "sdwan.yaml")
	if err := os.WriteFile(good, []byte(validYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("\n\n"+oneWAN+"    mtu: 9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ref := func(p string) string { b, _ := json.Marshal(map[string]string{"configFile": p}); return string(b) }

	got, err := loadConfig(ref(good))
	if err != nil {
		t.Fatalf("configFile: %v", err)
	}
	if want := validWant(); !reflect.DeepEqual(got, want) {
		t.Errorf("configFile config\n got %+v\nwant %+v", got, want)
	}

	for _, tc := range []struct {
		name, raw string
		want      []string
	}{
		{"lines are the file's", ref(bad), []string{"wans[0].mtu (line 7)"}},
		{"missing file", ref(filepath.Join(dir, "none.yaml")), []string{"none.yaml"}},
		{"other keys", `{"configFile": "` + good + `", "lan": ["eth0"]}`, []string{"configFile", "only key"}},
		{"other keys first", `{"maxFlows": 5, "configFile": "` + good + `"}`, []string{"configFile", "only key"}},
		{"empty path", `{"configFile": ""}`, []string{"configFile", "file path"}},
		{"not a string", `{"configFile": 7}`, []string{"configFile", "file path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(tc.raw)
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

func TestConfigWANIndex(t *testing.T) {
	c := validWant()
	for name, want := range map[string]int{"wan0": 0, "backup": 1, "wan1": -1, "lan": -1, "": -1} {
		if got := c.wanIndex(name); got != want {
			t.Errorf("wanIndex(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestMapSizes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		raw      string
		want, nh uint32
	}{
		{"default", oneWAN, 65536, 1024},
		{"set", oneWAN + "maxFlows: 1000\nmaxNexthops: 256\n", 1000, 256},
		{"json", `{"lan": ["eth0"], "wans": [{"interface": "wan0", "peer": "192.0.2.2"}], "maxFlows": 4096}`, 4096, 1024},
		{"full", validYAML, 65536, 1024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MapSizes(json.RawMessage(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]uint32{"flows": tc.want, "nhcache": tc.nh}; !reflect.DeepEqual(got, want) {
				t.Errorf("MapSizes = %v, want %v", got, want)
			}
		})
	}
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"maxFlows", oneWAN + "maxFlows: -1\n", "maxFlows (line 5)"},
		{"peer", "lan: [eth0]\nwans:\n  - interface: wan0\n    peer: x\n", "wans[0].peer (line 4)"},
		{"unknown field", oneWAN + "flows: 3\n", "field flows"},
		{"no config", "", "needs a config"},
	} {
		t.Run("invalid "+tc.name, func(t *testing.T) {
			got, err := MapSizes(json.RawMessage(tc.raw))
			if err == nil {
				t.Fatalf("MapSizes accepted it: %v", got)
			}
			if got != nil {
				t.Errorf("sizes %v with an error", got)
			}
			if !errors.Is(err, module.ErrInvalidConfig) {
				t.Errorf("error %q does not wrap module.ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}
