package integration

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	pb "github.com/oakestra/netmanager/modules/sdwan/sdwanpb"
	"github.com/oakestra/netmanager/test/sdwansite"
)

// siteYAML is site A's config (sdwansite's Config) as a YAML file of nine
// lines.
const siteYAML = `lan: [sdlan]
wans:
  - {name: wan1, interface: sdwan1, peer: 192.0.2.2}
  - {name: wan2, interface: sdwan2, peer: 198.51.100.2}
rules:
  - {id: 1, precedence: 10, dst: 10.2.0.0/16, action: redirect, target: lbr}
lbr:
  - {default: true, overlays: [{wan: wan1, weight: 1}]}
health: {interval: 50ms, timeout: 150ms, downAfter: 3, upAfter: 3}
`

// sdwanLeftovers lists what a refused load could leave on a site's node: an
// instance, pins, TCX programs on the three links, the gRPC listener, raw
// (GRE probe) sockets. It is empty on a node without the module.
func sdwanLeftovers(t *testing.T, s *sdwansite.Site) []string {
	t.Helper()
	n := &node{ns: s.Node, d: s.Daemon}
	var out []string
	var list []ebpfmanager.Info
	getJSON(t, n, "/ebpf", &list)
	for _, in := range list {
		out = append(out, fmt.Sprintf("instance %s (%s)", in.ID, in.Name))
	}
	if pins, _ := os.ReadDir(s.Daemon.PinDir); len(pins) > 0 {
		found, _ := exec.Command("find", s.Daemon.PinDir).Output()
		out = append(out, "pins: "+string(found))
	}
	for _, l := range []string{"sdlan", "sdwan1", "sdwan2"} {
		for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
			if ids := tcxChain(t, n, l, at); len(ids) > 0 {
				out = append(out, fmt.Sprintf("%s %v: programs %v", l, at, ids))
			}
		}
	}
	for _, ss := range [][]string{{"ss", "-Hltn", "sport = :50051"}, {"ss", "-Hwan"}} {
		if got := strings.TrimSpace(s.Node.MustExec(t, ss...)); got != "" {
			out = append(out, strings.Join(ss, " ")+": "+got)
		}
	}
	return out
}

// loadBody is a POST /ebpf body for sdwan on ifaces with config.
func loadBody(ifaces []string, config string) []byte {
	b, _ := json.Marshal(ifaces)
	return fmt.Appendf(nil, `{"name": "sdwan", "priority": 10, "interfaces": %s, "config": %s}`, b, config)
}

// assertNoSDWANLeftovers fails the test when sdwanLeftovers finds anything
// once the refusal has been answered.
func assertNoSDWANLeftovers(t *testing.T, s *sdwansite.Site, what string) {
	t.Helper()
	if left := sdwanLeftovers(t, s); len(left) > 0 {
		t.Fatalf("%s left behind: %v", what, left)
	}
}

// edit replaces old in s once; old must be there.
func edit(t *testing.T, s, old, repl string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("%q is not in %s", old, s)
	}
	return strings.Replace(s, old, repl, 1)
}

// writeTemp writes text to dir/name and returns its path.
func writeTemp(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type loadCase struct {
	name string
	body []byte
	want []string // each in the error
}

// loadRefusals are the bad loads for site A with config cfg; config files
// go to dir.
func loadRefusals(t *testing.T, cfg, dir string) []loadCase {
	file := func(name, text string) []byte {
		return sdwansite.LoadRequest(fmt.Sprintf(`{"configFile": %q}`, writeTemp(t, dir, name+".yaml", text)))
	}
	inline := func(old, repl string) []byte { return sdwansite.LoadRequest(edit(t, cfg, old, repl)) }
	three := []string{"sdlan", "sdwan1", "sdwan2"}
	return []loadCase{
		{"YAML file with a syntax error", file("syntax", siteYAML+"grpc: a: b\n"), []string{"yaml: line 10", "mapping values"}},
		// This one and "inline config with a wrong type" name the line and
		// the value but not the field: see TestSDWANTypeErrorNamesField.
		{"YAML file with a wrong type", file("type", siteYAML+"maxFlows: many\n"), []string{"line 10", "`many` into int"}},
		{"YAML file with an unknown field", file("unknown", siteYAML+"colour: red\n"), []string{"line 10", "field colour not found"}},
		{"YAML file with a bad duration", file("duration", edit(t, siteYAML, "interval: 50ms", "interval: soon")), []string{"health.interval (line 9)", `"soon"`}},
		{"config file that is missing", sdwansite.LoadRequest(fmt.Sprintf(`{"configFile": %q}`, filepath.Join(dir, "none.yaml"))), []string{"none.yaml", "no such file"}},
		{"configFile beside other keys", sdwansite.LoadRequest(`{"configFile": "/x.yaml", "lan": ["sdlan"]}`), []string{"configFile must be the only key"}},
		{"inline config with a wrong type", inline(`"lan": ["sdlan"]`, `"lan": "sdlan"`), []string{"line 1", "`sdlan` into []string"}},
		{"inline config with a bad duration", inline(`"interval": "50ms"`, `"interval": "soon"`), []string{"health.interval (line 5)", `"soon"`}},
		{"WAN with an unknown field", inline(`"interface": "sdwan1"`, `"interface": "sdwan1", "colour": "red"`), []string{"line 2", "field colour not found in type main.WANConfig"}},
		{"WAN with an unknown tos", inline(`"interface": "sdwan2"`, `"interface": "sdwan2", "tos": "high"`), []string{"wans[1].tos (line 2)", `"high"`}},
		{"WAN with a bad peer", inline(`"peer": "192.0.2.2"`, `"peer": "nowhere"`), []string{"wans[0].peer (line 2)", `"nowhere"`}},
		{"WAN with an MTU out of range", inline(`"interface": "sdwan1"`, `"interface": "sdwan1", "mtu": 100`), []string{"wans[0].mtu (line 2)", "576-65535"}},
		{"two WANs on one interface", inline(`"interface": "sdwan2"`, `"interface": "sdwan1"`), []string{"wans[1].interface (line 2)", `"sdwan1" already has a role`}},
		{"config interface not in the request", loadBody(three[:2], cfg), []string{"wans[1].interface (line 2)", `"sdwan2" is not among the load request's interfaces`}},
		{"request interface without a role", loadBody(append(three, "lo"), cfg), []string{"interfaces", `"lo" has no role`}},
		// sdwan3 comes last: sdlan, sdwan1 and sdwan2 are attached (and
		// their probes started) before it fails, and must all be undone.
		{"request interface not on the node", loadBody(append(three, "sdwan3"),
			edit(t, cfg, `"wans": [`, `"wans": [{"name": "wan3", "interface": "sdwan3", "peer": "203.0.113.2"}, `)), []string{"interface sdwan3", "not found"}},
		{"overlapping rules of one precedence", inline(`"rules": [`, `"rules": [{"id": 2, "precedence": 10, "dst": "10.2.0.5/32", "proto": "icmp", "action": "drop"}, `),
			[]string{"rules (line 3)", "rules 1 and 2 overlap", "same precedence (10)"}},
		{"rule redirecting to an unknown WAN", inline(`"target": "lbr"`, `"target": "wan9"`), []string{"rules[0] (line 3)", `target: "wan9"`}},
		{"rule with an unknown action", inline(`"action": "redirect"`, `"action": "steer"`), []string{"rules[0] (line 3)", `action: "steer"`}},
		{"LBR over an unknown WAN", inline(`{"wan": "wan1", "weight": 1}`, `{"wan": "wan7", "weight": 1}`), []string{"lbr[0] (line 4)", `overlays[0].wan: "wan7"`}},
	}
}

// A refused load answers 400 naming the field (and its line), and leaves the
// node as it was: no instance, pin, program, listener or socket. A valid load
// afterwards carries traffic.
func TestSDWANLoadRefusals(t *testing.T) {
	a, b := sdwansite.Wire(t, sdwansite.Options{Netmanager: netmanagerBin, ModulesDir: modulesDir})
	dir := t.TempDir()
	n := &node{ns: a.Node, d: a.Daemon}
	assertNoSDWANLeftovers(t, a, "before any load")
	before := n.settled(t)
	for _, tc := range loadRefusals(t, a.Config(sdwansite.DefaultHealth), dir) {
		code, body, err := a.Daemon.Client.Raw(ctx(t), http.MethodPost, "/ebpf", tc.body)
		var eb struct{ Error string }
		_ = json.Unmarshal(body, &eb)
		if err != nil || code != http.StatusBadRequest {
			t.Errorf("%s: %d %s (%v), want 400", tc.name, code, body, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(eb.Error, w) {
				t.Errorf("%s: the error %q does not say %q", tc.name, eb.Error, w)
			}
		}
		assertNoSDWANLeftovers(t, a, tc.name)
		n.assertState(t, before, tc.name)
	}
	// The same file with nothing added loads, and the pair carries traffic.
	a.Load(t, fmt.Sprintf(`{"configFile": %q}`, writeTemp(t, dir, "good.yaml", siteYAML)))
	b.Load(t, b.Config(sdwansite.DefaultHealth))
	left := strings.Join(sdwanLeftovers(t, a), "\n")
	for _, kind := range []string{"instance", "pins", "sdlan", "sdwan1", "sdwan2", ":50051", "-Hwan"} {
		if !strings.Contains(left, kind) {
			t.Errorf("sdwanLeftovers does not see a loaded instance's %q:\n%s", kind, left)
		}
	}
	sdwansite.WaitUp(t, a, b)
	tx := a.WANs(t)["wan1"].TxPackets
	assertPing(t, a.Host, "10.2.0.5")
	if got := a.WANs(t)["wan1"].TxPackets; got < tx+2 {
		t.Fatalf("the ping did not go over WAN 1: tx %d -> %d", tx, got)
	}
}

// A value of the wrong type (a string for an int or a list) is refused
// naming its field, also in a one-line JSON config, where the decoder's own
// "line 1" would say nothing.
func TestSDWANTypeErrorNamesField(t *testing.T) {
	a, _ := sdwansite.Wire(t, sdwansite.Options{Netmanager: netmanagerBin, ModulesDir: modulesDir})
	cfg := a.Config(sdwansite.DefaultHealth)
	cases := []struct{ field, old, repl string }{
		{"wans[1].mtu", `"interface": "sdwan2"`, `"interface": "sdwan2", "mtu": "big"`},
		{"maxFlows", `"lan": [`, `"maxFlows": "many", "lan": [`},
		{"rules[0].id", `"id": 1`, `"id": "one"`},
		{"lan", `"lan": ["sdlan"]`, `"lan": "sdlan"`},
	}
	for _, tc := range cases {
		var one bytes.Buffer
		if err := json.Compact(&one, []byte(edit(t, cfg, tc.old, tc.repl))); err != nil {
			t.Fatal(err)
		}
		code, body, err := a.Daemon.Client.Raw(ctx(t), http.MethodPost, "/ebpf", sdwansite.LoadRequest(one.String()))
		if err != nil || code != http.StatusBadRequest || !strings.Contains(string(body), tc.field+" (line ") {
			t.Errorf("%s of the wrong type: %d %s (%v), want 400 naming %s", tc.field, code, body, err, tc.field)
		}
		assertNoSDWANLeftovers(t, a, tc.field)
	}
}

func ieOf(typ pb.IEType, v []byte) *pb.IE { return &pb.IE{Type: typ, Length: uint32(len(v)), Value: v} }

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func pdrOf(ies ...*pb.IE) *pb.Rule { return &pb.Rule{Type: pb.RuleType_PDR, Ies: ies} }

type grpcCase struct {
	name  string
	op    pb.Operand
	rules []*pb.Rule
	code  codes.Code
	want  []string
}

// grpcRefusals are bad requests to a gateway with sdwansite's rule 1
// (precedence 10, 10.2.0.0/16 to the LBR) and two WANs. dropPing drops the
// ping to 10.2.0.5: valid alone, it must not go in with a bad rule.
func grpcRefusals(dropPing *pb.Rule) []grpcCase {
	id := func(v uint32) *pb.IE { return ieOf(pb.IEType_RULE_ID, be32(v)) }
	drop := ieOf(pb.IEType_ACTION, []byte{2})
	inv, nf, ex := codes.InvalidArgument, codes.NotFound, codes.AlreadyExists
	c, u, d := pb.Operand_CREATE, pb.Operand_UPDATE, pb.Operand_DELETE
	return []grpcCase{
		{"unknown IE type", c, []*pb.Rule{pdrOf(id(2), drop, &pb.IE{Type: 99, Length: 1, Value: []byte{1}})}, inv, []string{"rules[0] (PDR): ies[2]: unknown IE type 99"}},
		{"IE type 0", c, []*pb.Rule{pdrOf(id(2), drop, &pb.IE{Length: 1, Value: []byte{1}})}, inv, []string{"rules[0] (PDR): ies[2]: unknown IE type 0"}},
		{"length disagreeing with the value", c, []*pb.Rule{pdrOf(id(2), &pb.IE{Type: pb.IEType_PRECEDENCE, Length: 4, Value: []byte{0, 1}}, drop)}, inv,
			[]string{"ies[1] (PRECEDENCE): length 4 but the value has 2 bytes"}},
		{"wrong length for PROTOCOL", c, []*pb.Rule{pdrOf(id(2), ieOf(pb.IEType_PROTOCOL, []byte{0, 1}), drop)}, inv, []string{"ies[1] (PROTOCOL): length 2 must be 1"}},
		{"wrong length for DST_IP", c, []*pb.Rule{pdrOf(id(2), ieOf(pb.IEType_DST_IP, []byte{10, 2, 0, 5}), drop)}, inv, []string{"ies[1] (DST_IP): length 4 must be 5", "or 17"}},
		{"wrong length for RULE_ID", c, []*pb.Rule{pdrOf(ieOf(pb.IEType_RULE_ID, []byte{2}), drop)}, inv, []string{"ies[0] (RULE_ID): length 1 must be 4"}},
		{"action out of range", c, []*pb.Rule{pdrOf(id(2), ieOf(pb.IEType_ACTION, []byte{4}))}, inv, []string{"ies[1] (ACTION): 4 is not 1 (PASS), 2 (DROP) or 3 (REDIRECT)"}},
		{"action 0", c, []*pb.Rule{pdrOf(id(2), ieOf(pb.IEType_ACTION, []byte{0}))}, inv, []string{"ies[1] (ACTION): 0 is not"}},
		{"redirect to GRE-WAN 3 of 2", c, []*pb.Rule{pdrOf(id(2), ieOf(pb.IEType_ACTION, []byte{3}), ieOf(pb.IEType_INTERFACE, be32(3)))}, inv, []string{"ies[2] (INTERFACE): 3 is not"}},
		{"no ACTION", c, []*pb.Rule{pdrOf(id(2))}, inv, []string{"rules[0] (PDR): ACTION is required"}},
		{"overlapping rule 1 at its precedence", c, []*pb.Rule{pdrOf(id(2), ieOf(pb.IEType_PRECEDENCE, be32(10)),
			ieOf(pb.IEType_DST_IP, []byte{10, 2, 0, 5, 32}), ieOf(pb.IEType_PROTOCOL, []byte{1}), drop)}, inv, []string{"rules 1 and 2 overlap", "same precedence (10)"}},
		{"a valid rule beside a bad one", c, []*pb.Rule{dropPing, pdrOf(id(3), ieOf(pb.IEType_ACTION, []byte{9}))}, inv, []string{"rules[1] (PDR): ies[1] (ACTION): 9 is not"}},
		{"create of rule 1 again", c, []*pb.Rule{dropPing, pdrOf(id(1), drop)}, ex, []string{"rule 1 exists"}},
		{"update of a rule that does not exist", u, []*pb.Rule{pdrOf(id(9), drop)}, nf, []string{"no rule 9 to update"}},
		{"delete of a rule that does not exist", d, []*pb.Rule{pdrOf(id(77))}, nf, []string{"no rule 77 to delete"}},
		{"delete of rule 1 and one that does not exist", d, []*pb.Rule{pdrOf(id(1)), pdrOf(id(77))}, nf, []string{"no rule 77 to delete"}},
		{"delete with more than RULE_ID", d, []*pb.Rule{pdrOf(id(1), drop)}, inv, []string{"ies[1]: a delete carries only RULE_ID, not ACTION"}},
		{"LBR WEIGHT before INTERFACE", u, []*pb.Rule{{Type: pb.RuleType_LBR, Ies: []*pb.IE{ieOf(pb.IEType_DEFAULT_CLASS, []byte{1}),
			ieOf(pb.IEType_WEIGHT, be32(1)), ieOf(pb.IEType_INTERFACE, be32(2))}}}, inv, []string{"rules[0] (LBR): ies[1] (WEIGHT): a WEIGHT follows an INTERFACE"}},
		{"LBR over the LAN", u, []*pb.Rule{{Type: pb.RuleType_LBR, Ies: []*pb.IE{ieOf(pb.IEType_DEFAULT_CLASS, []byte{1}),
			ieOf(pb.IEType_INTERFACE, be32(0))}}}, inv, []string{"rules[0] (LBR): ies[1] (INTERFACE)"}},
		{"no operand", pb.Operand_OPERAND_UNSPECIFIED, []*pb.Rule{dropPing}, inv, []string{"operand 0"}},
		{"no rule type", c, []*pb.Rule{{Ies: dropPing.Ies}}, inv, []string{"rules[0]: type 0 is not PDR or LBR"}},
	}
}

// A refused gRPC request answers its status code, names the rule and IE,
// and changes nothing: List is as before, and the ping still goes over WAN 1.
func TestSDWANRefusedOverGRPC(t *testing.T) {
	a, _ := sdwansite.New(t, sdwansite.Options{Netmanager: netmanagerBin, ModulesDir: modulesDir})
	assertPing(t, a.Host, "10.2.0.5")
	gw := a.Gateway(t)
	before, err := gw.List(ctx(t), &pb.ListRequest{})
	if err != nil || len(before.GetRules()) != 3 { // rule 1 and two LBRs
		t.Fatalf("list: %v %v", before, err)
	}
	dropPing := pdrOf(ieOf(pb.IEType_RULE_ID, be32(2)), ieOf(pb.IEType_PRECEDENCE, be32(1)),
		ieOf(pb.IEType_DST_IP, []byte{10, 2, 0, 5, 32}), ieOf(pb.IEType_PROTOCOL, []byte{1}), ieOf(pb.IEType_ACTION, []byte{2}))
	for _, tc := range grpcRefusals(dropPing) {
		_, err := gw.Apply(ctx(t), &pb.Request{Operand: tc.op, Rules: tc.rules})
		st := status.Convert(err)
		if err == nil || st.Code() != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
		for _, w := range tc.want {
			if !strings.Contains(st.Message(), w) {
				t.Errorf("%s: the message %q does not say %q", tc.name, st.Message(), w)
			}
		}
		after, err := gw.List(ctx(t), &pb.ListRequest{})
		if err != nil || !proto.Equal(after, before) {
			t.Fatalf("%s changed the rules: %v %v, was %v", tc.name, after, err, before)
		}
		tx := a.WANs(t)["wan1"].TxPackets
		assertPing(t, a.Host, "10.2.0.5")
		if got := a.WANs(t)["wan1"].TxPackets; got < tx+2 {
			t.Fatalf("%s: the ping did not go over WAN 1: tx %d -> %d", tc.name, tx, got)
		}
	}
	// dropPing alone goes in and stops the ping: the checks above could fail.
	if _, err := gw.Apply(ctx(t), &pb.Request{Operand: pb.Operand_CREATE, Rules: []*pb.Rule{dropPing}}); err != nil {
		t.Fatal(err)
	}
	if out, err := a.Host.Exec("ping", "-c", "2", "-W", "1", "10.2.0.5"); err == nil {
		t.Fatalf("ping went through the drop rule:\n%s", out)
	}
}
