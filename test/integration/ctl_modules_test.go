package integration

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

// ctlRule is a firewall rule as firewall ID rules list -o json prints it.
type ctlRule struct {
	ID, Action, Direction, Proto, DstPorts string
	Priority                               *int
	Hits                                   uint64
}

func ctlRules(t *testing.T, n *node, id string) map[string]ctlRule {
	t.Helper()
	var rules []ctlRule
	ctlJSON(t, n, &rules, "firewall", id, "rules", "list")
	out := map[string]ctlRule{}
	for _, r := range rules {
		out[r.ID] = r
	}
	return out
}

// modules load, list, show, update, get, delete and delete --all; the
// packet counter's counts after traffic.
func TestCtlModules(t *testing.T) {
	t.Parallel()
	n := newNode(t, "--modules-dir", ctlModulesDir())
	a, b := newContainer(t), newContainer(t)
	deployContainer(t, n, a, "app.ns.ca.ns", 0, "")
	rb := deployContainer(t, n, b, "app.ns.cb.ns", 0, "")
	vethA := ctlVeth(t, n, "app.ns.ca.ns")

	ctl(t, n, "modules", "list").ok(t, "no module instances")
	ctl(t, n, "modules", "load", "packetcounter", "--priority", "5", "--config", `{"maxInterfaces": 16}`).
		ok(t, "loaded packetcounter as instance 1 (priority 5, 4 attachments, ")
	var list []ebpfmanager.Info
	ctlJSON(t, n, &list, "modules", "list")
	if len(list) != 1 || list[0].ID != "1" || list[0].Name != "packetcounter" || list[0].Priority != 5 || len(list[0].Attachments) != 4 {
		t.Fatalf("modules list -o json: %+v", list)
	}
	ctl(t, n, "modules", "list").ok(t, "ID", "packetcounter", "running")
	var info ebpfmanager.Info
	ctl(t, n, "modules", "show", "1", "-o", "json").decode(t, &info)
	var cfg bytes.Buffer
	if err := json.Compact(&cfg, info.Config); err != nil || info.ID != "1" || cfg.String() != `{"maxInterfaces":16}` {
		t.Fatalf("modules show: %+v (config %s)", info, info.Config)
	}
	ctl(t, n, "modules", "show", "1").ok(t, "packetcounter", "INTERFACE", vethA, "maxInterfaces")

	assertPing(t, a.ns, rb.NsAddress)
	var counts map[string]map[string]totals
	ctlJSON(t, n, &counts, "counter", "1", "counts")
	if counts[vethA]["egress"].Packets < 2 || counts[vethA]["ingress"].Packets < 2 {
		t.Fatalf("counter 1 counts -o json, %s: %+v", vethA, counts)
	}
	ctl(t, n, "counter", "1", "counts").ok(t, "INTERFACE", "INGRESS PACKETS", vethA)
	ctl(t, n, "modules", "get", "1", "/counts").decode(t, &counts)
	if counts[vethA]["egress"].Packets < 2 {
		t.Fatalf("modules get 1 /counts: %+v", counts)
	}
	ctl(t, n, "modules", "get", "1", "counts", "-o", "table").ok(t, vethA, "EGRESS.PACKETS")

	ctl(t, n, "modules", "update", "1", "--priority", "6").ok(t, "updated packetcounter instance 1 (priority 6, 4 attachments")
	ctlJSON(t, n, &info, "modules", "update", "1", "--config", `{"maxInterfaces": 16}`)
	if info.Priority != 6 || !strings.Contains(string(info.Config), "16") || len(info.Attachments) != 4 {
		t.Fatalf("modules update -o json: %+v", info)
	}
	ctlJSON(t, n, &counts, "counter", "1", "counts") // the counters carried across the update
	if counts[vethA]["egress"].Packets < 2 {
		t.Fatalf("counts after the update: %+v", counts)
	}
	ctl(t, n, "modules", "update", "1", "--config", `{"maxInterfaces": 0}`).fails(t, 3, "HTTP 400", "maxInterfaces")
	ctl(t, n, "modules", "update", "1", "--config", `{"maxInterfaces": 64}`).fails(t, 3, "HTTP 4") // other map sizes: a refusal
	ctl(t, n, "modules", "load", "nosuch").fails(t, 3, "HTTP 404")
	ctl(t, n, "modules", "get", "1", "/nothing").fails(t, 3, "HTTP 404", "no route GET /nothing")

	ctl(t, n, "modules", "load", "packetcounter").ok(t, "loaded packetcounter as instance 2")
	ctl(t, n, "modules", "delete", "1").ok(t, "instance 1 deleted")
	var del map[string]string
	ctlJSON(t, n, &del, "modules", "delete", "2")
	if del["id"] != "2" || del["state"] != "deleted" {
		t.Fatalf("modules delete -o json: %v", del)
	}
	ctl(t, n, "modules", "delete", "2").fails(t, 3, "HTTP 404")
	ctl(t, n, "modules", "load", "packetcounter").ok(t)
	ctl(t, n, "modules", "load", "firewall").ok(t)
	ctl(t, n, "modules", "delete", "--all").ok(t, "every module instance deleted")
	ctlJSON(t, n, &list, "modules", "list")
	if len(list) != 0 {
		t.Fatalf("after delete --all: %+v", list)
	}
	ctl(t, n, "modules", "load", "packetcounter").ok(t)
	ctlJSON(t, n, &list, "modules", "delete", "--all")
	if len(list) != 0 {
		t.Fatalf("delete --all -o json: %+v", list)
	}
	n.stop(t)
}

// ctlVeth is the host veth of a service's instance 0, from services -o json.
func ctlVeth(t *testing.T, n *node, name string) string {
	t.Helper()
	var recs []struct {
		ServiceName string
		HostVeth    string
	}
	ctlJSON(t, n, &recs, "services")
	for _, r := range recs {
		if r.ServiceName == name {
			return r.HostVeth
		}
	}
	t.Fatalf("services lacks %s: %+v", name, recs)
	return ""
}

// firewall ID rules list, add (flags and --json), delete, replace (--json,
// --file, stdin) and stats, with the traffic they let through or not.
func TestCtlFirewall(t *testing.T) {
	t.Parallel()
	n := newNode(t, "--modules-dir", ctlModulesDir())
	a, b := newContainer(t), newContainer(t)
	deployContainer(t, n, a, "app.ns.fa.ns", 0, "")
	rb := deployContainer(t, n, b, "app.ns.fb.ns", 0, "")
	vethB := ctlVeth(t, n, "app.ns.fb.ns")
	serveEcho(t, b.ns, "tcp", ":8080")
	ctl(t, n, "modules", "load", "firewall", "--services", "app.ns.fb.ns").ok(t, "loaded firewall as instance 1")
	ctl(t, n, "firewall", "1", "rules", "list").ok(t, "no rules")
	assertPing(t, a.ns, rb.NsAddress)

	ctl(t, n, "firewall", "1", "rules", "add", "--id", "noping", "--action", "deny", "--proto", "icmp", "--direction", "ingress").
		ok(t, "ID", "noping", "deny", "ingress", "icmp")
	pingMarked(t, a, rb.NsAddress, 2, "", true)
	rules := ctlRules(t, n, "1")
	if r := rules["noping"]; len(rules) != 1 || r.Action != "deny" || r.Proto != "icmp" || r.Hits < 2 {
		t.Fatalf("rules list -o json after the denied pings: %+v", rules)
	}
	ctl(t, n, "firewall", "1", "rules", "list").ok(t, "noping", "deny", "ingress", "icmp")
	var added ctlRule
	ctlJSON(t, n, &added, "firewall", "1", "rules", "add", "--json", `{"id": "web", "action": "allow", "proto": "tcp", "dstPorts": "8080", "priority": 5}`)
	if added.ID != "web" || added.Priority == nil || *added.Priority != 5 || added.DstPorts != "8080" {
		t.Fatalf("rules add --json -o json: %+v", added)
	}
	ctl(t, n, "firewall", "1", "rules", "add", "--action", "deny", "--src", "10.0.0.1/8").fails(t, 3, "HTTP 400", "src")
	ctl(t, n, "firewall", "1", "rules", "add", "--id", "web", "--action", "deny").fails(t, 3, "HTTP 409", `rule "web" exists`)
	ctl(t, n, "firewall", "1", "rules", "delete", "nosuch").fails(t, 3, "HTTP 404", `no rule "nosuch"`)

	var st map[string]map[string]struct{ Allowed, Denied uint64 }
	ctlJSON(t, n, &st, "firewall", "1", "stats")
	if st[vethB]["ingress"].Denied < 2 {
		t.Fatalf("firewall stats -o json: %+v", st)
	}
	ctl(t, n, "firewall", "1", "stats").ok(t, "INTERFACE", "INGRESS DENIED", vethB)

	ctl(t, n, "firewall", "1", "rules", "delete", "noping").ok(t, "rule noping deleted")
	assertPing(t, a.ns, rb.NsAddress)
	var gone map[string]string
	ctlJSON(t, n, &gone, "firewall", "1", "rules", "delete", "web")
	if gone["id"] != "web" || len(ctlRules(t, n, "1")) != 0 {
		t.Fatalf("rules delete -o json: %v, rules %+v", gone, ctlRules(t, n, "1"))
	}
	ctlFirewallReplace(t, n, a, rb.NsAddress)
	n.stop(t)
}

// ctlFirewallReplace replaces the rule set from --json, a file and stdin.
func ctlFirewallReplace(t *testing.T, n *node, a *container, addr string) {
	t.Helper()
	echoTo := net.JoinHostPort(addr, "8080")
	var set []ctlRule
	ctlJSON(t, n, &set, "firewall", "1", "rules", "replace", "--json", `[{"id": "notcp", "action": "deny", "proto": "tcp", "dstPorts": "8080"}]`)
	if len(set) != 1 || set[0].ID != "notcp" {
		t.Fatalf("rules replace --json -o json: %+v", set)
	}
	if tcpReachable(a, echoTo) {
		t.Fatal("TCP 8080 answered through a deny rule")
	}
	file := filepath.Join(t.TempDir(), "rules.json")
	if err := os.WriteFile(file, []byte(`[{"id": "noping", "action": "deny", "proto": "icmp"}, {"id": "rest", "action": "allow", "priority": 200}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctl(t, n, "firewall", "1", "rules", "replace", "--file", file).ok(t, "noping", "rest", "200")
	if rules := ctlRules(t, n, "1"); len(rules) != 2 || rules["notcp"].ID != "" || rules["rest"].Priority == nil {
		t.Fatalf("after replace --file: %+v", rules)
	}
	assertEcho(t, a.ns, "tcp", echoTo)
	pingMarked(t, a, addr, 1, "", true)
	stdin := strings.NewReader(`[]`)
	runCtlBin(t, nil, stdin, "--socket", n.d.Socket, "firewall", "1", "rules", "replace", "--file", "-").ok(t, "no rules")
	assertPing(t, a.ns, addr)
	ctl(t, n, "firewall", "1", "rules", "replace", "--json", `[{"action": "maybe"}]`).fails(t, 3, "HTTP 400", "action")
	ctl(t, n, "firewall", "1", "rules", "replace", "--json", `{"action": "deny"}`).fails(t, 2, "not a JSON array")
}

// proxy ID translations, sessions, stats and peers after traffic to a
// service IP through the eBPF proxy.
func TestCtlEBPFProxy(t *testing.T) {
	t.Parallel()
	n := newNode(t, "--modules-dir", ctlModulesDir())
	client := webServices(t, n)
	ctl(t, n, "modules", "load", "proxy", "--priority", "50").ok(t, "loaded proxy as instance 1")
	rr := serviceIP(t, n, "app.ns.web.ns", 0, table.PolicyRoundRobin)
	if name, err := ask(client, "tcp4", net.JoinHostPort(rr, "8080")); err != nil || !strings.HasPrefix(name, "web") {
		t.Fatalf("through the eBPF proxy: %q %v", name, err)
	}
	var trans map[string][]string
	ctlJSON(t, n, &trans, "proxy", "1", "translations")
	if len(trans[rr]) != 3 {
		t.Fatalf("proxy translations -o json: %v", trans)
	}
	ctl(t, n, "proxy", "1", "translations").ok(t, "SERVICE IP", rr, trans[rr][0]+","+trans[rr][1])

	var sess struct {
		Count, Listed int
		Sessions      []struct{ Proto, From, To, TranslatedTo string }
	}
	ctlJSON(t, n, &sess, "proxy", "1", "sessions")
	found := false
	for _, s := range sess.Sessions {
		found = found || s.Proto == "tcp" && s.To == net.JoinHostPort(rr, "8080")
	}
	if sess.Count < 1 || !found {
		t.Fatalf("proxy sessions -o json: %+v", sess)
	}
	ctl(t, n, "proxy", "1", "sessions").ok(t, "sessions", "TRANSLATED TO", rr+":8080")

	var st map[string]uint64
	ctlJSON(t, n, &st, "proxy", "1", "stats")
	if st["newSessions"] < 1 || st["hits"] == 0 {
		t.Fatalf("proxy stats -o json: %v", st)
	}
	ctl(t, n, "proxy", "1", "stats").ok(t, "COUNTER", "newSessions", "hits")

	var peers map[string]json.RawMessage
	ctlJSON(t, n, &peers, "proxy", "1", "peers")
	if len(peers) != 0 {
		t.Fatalf("proxy peers on a node without a tunnel: %v", peers)
	}
	ctl(t, n, "proxy", "1", "peers").ok(t, "no peers")
	ctl(t, n, "firewall", "1", "rules", "list").fails(t, 3, "HTTP 404", "module proxy has no route GET /rules") // the wrong module: its 404
	n.stop(t)
}
