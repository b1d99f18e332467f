package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// fakeDaemon answers canned bodies by "METHOD PATH" and records what it got.
type fakeDaemon struct {
	mu      sync.Mutex
	answers map[string]answer
	got     []request
	srv     *httptest.Server
}

type answer struct {
	status int
	body   string
}

type request struct{ method, path, body string }

func newFakeDaemon(t *testing.T, answers map[string]answer) *fakeDaemon {
	f := &fakeDaemon{answers: answers}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.got = append(f.got, request{r.Method, r.URL.Path, string(b)})
		a, ok := f.answers[r.Method+" "+r.URL.Path]
		f.mu.Unlock()
		if !ok {
			a = answer{404, `{"error": "no route ` + r.Method + " " + r.URL.Path + `"}`}
		}
		if a.status == 0 {
			a.status = 200
		}
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeDaemon) ctl(args ...string) (int, string, string) {
	return runCtl(append([]string{"--addr", f.srv.URL}, args...)...)
}

// expect runs netmanagerctl args against f and checks its exit code, that
// its stderr contains errs and its stdout each of out.
func (f *fakeDaemon) expect(t *testing.T, args []string, rc int, out []string, errs string) {
	t.Helper()
	got, stdout, stderr := f.ctl(args...)
	if got != rc || !strings.Contains(stderr, errs) {
		t.Fatalf("%v: rc %d (want %d), stderr %q (want %q)", args, got, rc, stderr, errs)
	}
	for _, want := range out {
		if !strings.Contains(stdout, want) {
			t.Errorf("%v: stdout lacks %q:\n%s", args, want, stdout)
		}
	}
}

func (f *fakeDaemon) take() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.got
	f.got = nil
	return r
}

const (
	servicesJSON = `[{"kind": "container", "serviceName": "app.ns.web.ns", "instanceNumber": 2, "pid": 42, "netns": "/proc/42/ns/net",
  "hostVeth": "oak1", "hostIfindex": 7, "peer": "eth0", "nsAddress": "10.18.0.2", "nsAddressv6": "fd00:18::2",
  "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
  "serviceIPs": [{"policy": "round_robin", "address": "10.30.0.1"}], "serviceIPsFrom": "cluster"},
 {"kind": "container", "serviceName": "app.ns.new.ns", "instanceNumber": 0, "pid": 43, "netns": "/proc/43/ns/net",
  "hostVeth": "oak2", "hostIfindex": 8, "peer": "eth0", "nsAddress": "10.18.0.3", "portMappings": [],
  "serviceIPs": null, "serviceIPsFrom": "pending"}]`
	instanceJSON = `{"id": "4", "name": "firewall", "priority": 30, "config": {"defaultPolicy": "deny"}, "state": "running", "mode": "tcx",
  "created": "2026-01-02T03:04:05Z", "attachments": [{"interface": "oak1", "ifindex": 7, "service": "app.ns.web.ns/2",
  "hook": "ingress", "direction": "egress", "programId": 130}]}`
	rulesJSON = `[{"id": "noping", "action": "deny", "proto": "icmp", "hits": 3}, {"id": "r1", "action": "allow", "direction": "ingress",
  "src": "10.0.0.0/8", "proto": "tcp", "dstPorts": "80-90", "priority": 10, "hits": 0}]`
)

func fakeAnswers() map[string]answer {
	return map[string]answer{
		"GET /healthz":                 {body: `{"status": "ok"}`},
		"GET /version":                 {body: `{"version": "v1.2.3", "go": "go1.24"}`},
		"GET /services":                {body: servicesJSON},
		"GET /proxy":                   {body: `{"enabled": true, "tun": "goProxyTun", "stats": {"translated": 47, "dropped": {"no instances": 1}}}`},
		"POST /register":               {body: `{"client_id": "n1", "cluster_address": "", "mode": "standalone"}`},
		"POST /container/deploy":       {body: `{"serviceName": "app.ns.web.ns", "nsAddress": "10.18.0.2", "nsAddressv6": "fd00:18::2"}`},
		"POST /unikernel/deploy":       {body: `{"serviceName": "app.ns.uk.ns", "nsAddress": "10.18.0.3", "nsAddressv6": ""}`},
		"POST /container/undeploy":     {body: `{"serviceName": "app.ns.web.ns", "instanceNumber": 2}`},
		"POST /unikernel/undeploy":     {body: `{"serviceName": "app.ns.uk.ns", "instanceNumber": 0}`},
		"GET /metrics":                 {body: "# HELP x y\nx 1\n"},
		"GET /openapi.json":            {body: `{"openapi":"3.0.3"}`},
		"GET /ebpf":                    {body: "[" + instanceJSON + "]"},
		"POST /ebpf":                   {body: instanceJSON},
		"GET /ebpf/4":                  {body: instanceJSON},
		"PUT /ebpf/4":                  {body: instanceJSON},
		"DELETE /ebpf/4":               {body: `{"id": "4", "state": "deleted"}`},
		"DELETE /ebpf":                 {body: `[]`},
		"GET /ebpf/999":                {404, `{"error": "no module instance \"999\""}`},
		"GET /ebpf/4/rules":            {body: rulesJSON},
		"POST /ebpf/4/rules":           {body: `{"id": "r2", "action": "deny", "proto": "udp", "hits": 0}`},
		"PUT /ebpf/4/rules":            {body: rulesJSON},
		"DELETE /ebpf/4/rules/noping":  {body: `{"id": "noping", "state": "deleted"}`},
		"GET /ebpf/4/stats":            {body: `{"oak1": {"ingress": {"allowed": 5, "denied": 2}, "egress": {"allowed": 7, "denied": 0}}}`},
		"GET /ebpf/5/translations":     {body: `{"10.30.0.1": ["10.18.0.2", "10.18.0.3"]}`},
		"GET /ebpf/5/sessions":         {body: `{"count": 1, "listed": 1, "sessions": [{"proto": "tcp", "from": "10.18.0.4:5000", "to": "10.30.0.1:80", "translatedTo": "10.18.0.2 from 10.30.0.9"}]}`},
		"GET /ebpf/5/stats":            {body: `{"hits": 12, "misses": 1}`},
		"GET /ebpf/5/peers":            {body: `{"192.168.77.2": {"txPackets": 3, "txBytes": 300, "rxPackets": 2, "rxBytes": 200}}`},
		"GET /ebpf/6/counts":           {body: `{"oak1": {"ingress": {"packets": 11, "bytes": 1100}, "egress": {"packets": 9, "bytes": 900}}}`},
		"GET /ebpf/7/rules":            {body: `[{"id": 1, "precedence": 10, "dst": "10.2.0.0/16", "action": "redirect", "target": "lbr", "flows": 4}]`},
		"GET /ebpf/7/lbr":              {body: `[{"default": true, "overlays": [{"wan": "wan1", "weight": 1}], "active": {"wan1": 128}}, {"tos": 32, "overlays": [{"wan": "wan2", "weight": 3}], "active": {}}]`},
		"GET /ebpf/7/wans":             {body: `[{"name": "wan1", "interface": "sdwan1", "local": "192.0.2.1", "peer": "192.0.2.2", "mtu": 1476, "up": true, "latencyMs": 0.2, "txPackets": 8}]`},
		"GET /ebpf/7/stats":            {body: `{"counters": {"noMatch": 3, "toLan": 5}, "wans": [{"name": "wan1", "up": false}]}`},
		"GET /ebpf/6/anything/deep":    {body: `{"a": 1}`},
		"GET /ebpf/8/rules":            {500, `{"error": "read the map: boom"}`},
		"GET /ebpf/9/rules":            {body: `not json`},
		"POST /ebpf/4/rules/conflict":  {409, `{"error": "x"}`},
		"DELETE /ebpf/4/rules/missing": {404, `{"error": "no rule \"missing\""}`},
	}
}

// requestCase is a command line, the request it must send and lines of
// what it must print.
type requestCase struct {
	args         []string
	method, path string
	body         string // JSON, compared as values; "" for none
	out          []string
}

var requestCases = []requestCase{
	{[]string{"health"}, "GET", "/healthz", "", []string{"ok\n"}},
	{[]string{"version"}, "GET", "/version", "", []string{"v1.2.3\n"}},
	{[]string{"services"}, "GET", "/services", "", []string{"SERVICE", "app.ns.web.ns  2", "fd00:18::2", "round_robin=10.30.0.1", "8080:80/tcp", "app.ns.new.ns  0", "(pending)"}},
	{[]string{"proxy", "-o", "table"}, "GET", "/proxy", "", []string{"enabled", "true", "translated", "47", "dropped: no instances"}},
	{[]string{"register", "--client-id", "n1"}, "POST", "/register", `{"client_id": "n1", "cluster_address": ""}`, []string{"mode", "standalone"}},
	{[]string{"register", "--client-id", "n1", "--cluster-address", "192.0.2.10"}, "POST", "/register", `{"client_id": "n1", "cluster_address": "192.0.2.10"}`, nil},
	{[]string{"deploy", "--service", "app.ns.web.ns", "--instance", "2", "--pid", "42", "--ports", "8080:80"}, "POST", "/container/deploy",
		`{"pid": 42, "serviceName": "app.ns.web.ns", "instanceNumber": 2, "portMappings": "8080:80"}`, []string{"app.ns.web.ns instance 2: 10.18.0.2 fd00:18::2"}},
	{[]string{"deploy", "--service", "app.ns.web.ns", "--pid", "42", "--ebpf-modules", `[{"name": "firewall", "config": {"defaultPolicy": "deny"}}]`}, "POST", "/container/deploy",
		`{"pid": 42, "serviceName": "app.ns.web.ns", "instanceNumber": 0, "portMappings": "", "ebpfModules": [{"name": "firewall", "config": {"defaultPolicy": "deny"}}]}`, nil},
	{[]string{"deploy", "--unikernel", "--service", "app.ns.uk.ns"}, "POST", "/unikernel/deploy",
		`{"pid": 0, "serviceName": "app.ns.uk.ns", "instanceNumber": 0, "portMappings": ""}`, []string{"app.ns.uk.ns instance 0: 10.18.0.3"}},
	{[]string{"undeploy", "--service", "app.ns.web.ns", "--instance", "2"}, "POST", "/container/undeploy",
		`{"serviceName": "app.ns.web.ns", "instanceNumber": 2}`, []string{"app.ns.web.ns instance 2: undeployed"}},
	{[]string{"undeploy", "--unikernel", "--service", "app.ns.uk.ns"}, "POST", "/unikernel/undeploy", `{"serviceName": "app.ns.uk.ns", "instanceNumber": 0}`, nil},
	{[]string{"metrics"}, "GET", "/metrics", "", []string{"# HELP x y\nx 1\n"}},
	{[]string{"openapi"}, "GET", "/openapi.json", "", []string{`{"openapi":"3.0.3"}`}},
	{[]string{"modules", "list"}, "GET", "/ebpf", "", []string{"ID", "4   firewall  30", "running", "tcx"}},
	{[]string{"modules", "load", "firewall", "--priority", "30", "--config", `{"defaultPolicy": "deny"}`, "--services", "a.b.c.d,e.f.g.h", "--interfaces", "eth1"}, "POST", "/ebpf",
		`{"name": "firewall", "priority": 30, "config": {"defaultPolicy": "deny"}, "services": ["a.b.c.d", "e.f.g.h"], "interfaces": ["eth1"]}`,
		[]string{"loaded firewall as instance 4 (priority 30, 1 attachments, tcx)"}},
	{[]string{"modules", "load", "packetcounter"}, "POST", "/ebpf", `{"name": "packetcounter", "config": null, "priority": null, "services": null, "interfaces": null}`, nil},
	{[]string{"modules", "show", "4", "-o", "table"}, "GET", "/ebpf/4", "", []string{"name      firewall", `{"defaultPolicy": "deny"}`, "INTERFACE", "oak1", "130"}},
	{[]string{"modules", "update", "4", "--priority", "31"}, "PUT", "/ebpf/4", `{"priority": 31}`, []string{"updated firewall instance 4"}},
	{[]string{"modules", "update", "4", "--config", `{"rules": []}`}, "PUT", "/ebpf/4", `{"config": {"rules": []}}`, nil},
	{[]string{"modules", "update", "4"}, "PUT", "/ebpf/4", `{}`, nil},
	{[]string{"modules", "delete", "4"}, "DELETE", "/ebpf/4", "", []string{"instance 4 deleted"}},
	{[]string{"modules", "delete", "--all"}, "DELETE", "/ebpf", "", []string{"every module instance deleted"}},
	{[]string{"modules", "get", "6", "anything/deep"}, "GET", "/ebpf/6/anything/deep", "", []string{`"a": 1`}},
	{[]string{"modules", "get", "6", "/anything/deep", "-o", "table"}, "GET", "/ebpf/6/anything/deep", "", []string{"a    1"}},
	{[]string{"firewall", "4", "rules", "list"}, "GET", "/ebpf/4/rules", "", []string{
		"ID      PRIORITY  ACTION  DIRECTION  SRC         DST  PROTO  SRC PORTS  DST PORTS  HITS",
		"noping  100       deny    both       -           -    icmp   -          -          3",
		"r1      10        allow   ingress    10.0.0.0/8  -    tcp    -          80-90      0"}},
	{[]string{"firewall", "4", "rules", "add", "--id", "r2", "--action", "deny", "--direction", "egress", "--src", "10.0.0.0/8", "--dst", "fd00::1",
		"--proto", "udp", "--src-ports", "1000-2000", "--dst-ports", "53", "--priority", "0"}, "POST", "/ebpf/4/rules",
		`{"id": "r2", "action": "deny", "direction": "egress", "src": "10.0.0.0/8", "dst": "fd00::1", "proto": "udp", "srcPorts": "1000-2000", "dstPorts": "53", "priority": 0}`,
		[]string{"r2", "deny"}},
	{[]string{"firewall", "4", "rules", "add", "--action", "deny"}, "POST", "/ebpf/4/rules", `{"action": "deny"}`, nil},
	{[]string{"firewall", "4", "rules", "add", "--json", `{"action": "deny", "proto": "icmp"}`}, "POST", "/ebpf/4/rules", `{"action": "deny", "proto": "icmp"}`, nil},
	{[]string{"firewall", "4", "rules", "delete", "noping"}, "DELETE", "/ebpf/4/rules/noping", "", []string{"rule noping deleted"}},
	{[]string{"firewall", "4", "rules", "replace", "--json", `[{"action": "deny"}]`}, "PUT", "/ebpf/4/rules", `[{"action": "deny"}]`, []string{"noping"}},
	{[]string{"firewall", "4", "stats"}, "GET", "/ebpf/4/stats", "", []string{"INTERFACE  INGRESS ALLOWED", "oak1       5                2               7"}},
	{[]string{"proxy", "5", "translations"}, "GET", "/ebpf/5/translations", "", []string{"10.30.0.1   10.18.0.2,10.18.0.3"}},
	{[]string{"proxy", "5", "sessions"}, "GET", "/ebpf/5/sessions", "", []string{"1 sessions, 1 listed", "10.18.0.4:5000", "10.18.0.2 from 10.30.0.9"}},
	{[]string{"proxy", "5", "stats"}, "GET", "/ebpf/5/stats", "", []string{"hits     12"}},
	{[]string{"proxy", "5", "peers"}, "GET", "/ebpf/5/peers", "", []string{"192.168.77.2  3           300"}},
	{[]string{"counter", "6", "counts"}, "GET", "/ebpf/6/counts", "", []string{"oak1       11               1100           9"}},
	{[]string{"sdwan", "7", "rules"}, "GET", "/ebpf/7/rules", "", []string{"10.2.0.0/16", "redirect", "lbr", "4"}},
	{[]string{"sdwan", "7", "lbr"}, "GET", "/ebpf/7/lbr", "", []string{"default", "wan1:1", "wan1:128", "tos 32", "wan2:3"}},
	{[]string{"sdwan", "7", "wans"}, "GET", "/ebpf/7/wans", "", []string{"wan1", "sdwan1", "1476", "true", "0.2"}},
	{[]string{"sdwan", "7", "stats"}, "GET", "/ebpf/7/stats", "", []string{"noMatch", "toLan", "wan1", "false"}},
}

// Every command sends its request and prints the answer as a table by
// default (the lines given appear in stdout).
func TestCommandsSendTheirRequests(t *testing.T) {
	f := newFakeDaemon(t, fakeAnswers())
	for _, tc := range requestCases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			rc, out, errs := f.ctl(tc.args...)
			got := f.take()
			if rc != 0 {
				t.Fatalf("rc %d, stderr %q", rc, errs)
			}
			if len(got) != 1 || got[0].method != tc.method || got[0].path != tc.path {
				t.Fatalf("requests %+v, want %s %s", got, tc.method, tc.path)
			}
			if tc.body != "" {
				assertSameJSON(t, got[0].body, tc.body)
			} else if got[0].body != "" {
				t.Fatalf("sent a body %q", got[0].body)
			}
			for _, want := range tc.out {
				if !strings.Contains(out, want) {
					t.Fatalf("stdout lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func assertSameJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("sent %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("sent %s\nwant %s", got, want)
	}
}

// -o json, given to the command or before it, and --json print the
// daemon's JSON, indented; proxy and modules show print it by default.
func TestJSONOutput(t *testing.T) {
	f := newFakeDaemon(t, fakeAnswers())
	for _, args := range [][]string{
		{"services", "-o", "json"}, {"-o", "json", "services"}, {"--json", "services"}, {"services", "--json"},
		{"-o", "table", "services", "-o", "json"},
	} {
		rc, out, errs := f.ctl(args...)
		if rc != 0 || !strings.HasPrefix(out, "[\n  {\n    \"kind\": \"container\",") {
			t.Fatalf("%v: rc %d, stderr %q, stdout\n%s", args, rc, errs, out)
		}
		assertSameJSON(t, out, servicesJSON)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"proxy", "-o", "json"}, `{"enabled": true, "tun": "goProxyTun", "stats": {"translated": 47, "dropped": {"no instances": 1}}}`},
		{[]string{"modules", "show", "4", "-o", "json"}, instanceJSON},
		{[]string{"modules", "get", "6", "/anything/deep"}, `{"a": 1}`},
		{[]string{"health", "-o", "json"}, `{"status": "ok"}`},
		{[]string{"firewall", "4", "rules", "add", "--action", "deny", "-o", "json"}, `{"id": "r2", "action": "deny", "proto": "udp", "hits": 0}`},
		{[]string{"-o", "json", "counter", "6", "counts"}, `{"oak1": {"ingress": {"packets": 11, "bytes": 1100}, "egress": {"packets": 9, "bytes": 900}}}`},
	} {
		rc, out, errs := f.ctl(tc.args...)
		if rc != 0 || !strings.Contains(out, "\n  \"") {
			t.Fatalf("%v: rc %d, stderr %q, stdout\n%s", tc.args, rc, errs, out)
		}
		assertSameJSON(t, out, tc.want)
	}
	if rc, out, _ := f.ctl("-o", "json", "metrics"); rc != 0 || out != "# HELP x y\nx 1\n" {
		t.Fatalf("metrics is printed as it comes, -o or not: rc %d %q", rc, out)
	}
}

// Bad command lines exit 2 with a message on stderr and send nothing.
func TestUsageErrors(t *testing.T) {
	f := newFakeDaemon(t, fakeAnswers())
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{nil, "no command given"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"--bogus", "health"}, "flag provided but not defined: -bogus"},
		{[]string{"-o", "yaml", "services"}, `"yaml" is not table or json`},
		{[]string{"services", "-o", "yaml"}, `"yaml" is not table or json`},
		{[]string{"services", "extra"}, `services: unexpected argument "extra"`},
		{[]string{"health", "--bogus"}, "-bogus"},
		{[]string{"metrics", "-o", "json"}, "-o"},
		{[]string{"register"}, "register needs --client-id"},
		{[]string{"deploy", "--pid", "4"}, "deploy needs --service"},
		{[]string{"deploy", "--service", "a.b.c.d"}, "deploy needs --pid P"},
		{[]string{"deploy", "--service", "a.b.c.d", "--pid", "x"}, `invalid value "x" for flag -pid`},
		{[]string{"deploy", "--service", "a.b.c.d", "--pid", "4", "--ebpf-modules", "{"}, "--ebpf-modules is not a JSON array"},
		{[]string{"undeploy", "--instance", "1"}, "undeploy needs --service"},
		{[]string{"modules"}, "modules needs a subcommand"},
		{[]string{"modules", "frob"}, `modules: unknown subcommand "frob"`},
		{[]string{"modules", "show"}, "modules show: missing arguments: ID"},
		{[]string{"modules", "show", "1", "2"}, `modules show: unexpected argument "2"`},
		{[]string{"modules", "load"}, "missing arguments: NAME"},
		{[]string{"modules", "load", "firewall", "--config", "{"}, "--config is not valid JSON"},
		{[]string{"modules", "load", "firewall", "--priority", "high"}, `invalid value "high" for flag -priority`},
		{[]string{"modules", "update"}, "missing arguments: ID"},
		{[]string{"modules", "update", "4", "--config", "nope"}, "--config is not valid JSON"},
		{[]string{"modules", "delete"}, "modules delete needs an instance ID or --all"},
		{[]string{"modules", "delete", "4", "--all"}, "modules delete needs an instance ID or --all"},
		{[]string{"modules", "get", "4"}, "missing arguments: ID PATH"},
		{[]string{"firewall"}, "firewall needs a subcommand"},
		{[]string{"firewall", "4"}, "firewall ID needs a subcommand"},
		{[]string{"firewall", "4", "rules"}, "firewall ID rules needs a subcommand"},
		{[]string{"firewall", "4", "rules", "purge"}, `firewall ID rules: unknown subcommand "purge"`},
		{[]string{"firewall", "4", "rules", "add"}, "needs --action allow|deny (or --json RULE)"},
		{[]string{"firewall", "4", "rules", "add", "--json", "{"}, "--json is not valid JSON"},
		{[]string{"firewall", "4", "rules", "add", "--json", "{}", "--action", "deny"}, "--json and the rule's flags exclude each other"},
		{[]string{"firewall", "4", "rules", "add", "--action", "deny", "--priority", "first"}, `invalid value "first" for flag -priority`},
		{[]string{"firewall", "4", "rules", "delete"}, "missing arguments: RULEID"},
		{[]string{"firewall", "4", "rules", "replace"}, "needs one of --file F|- and --json RULES"},
		{[]string{"firewall", "4", "rules", "replace", "--json", "[]", "--file", "x"}, "needs one of --file F|- and --json RULES"},
		{[]string{"firewall", "4", "rules", "replace", "--json", `{"action": "deny"}`}, "the rules are not a JSON array"},
		{[]string{"firewall", "4", "rules", "replace", "--file", "/nonexistent/rules.json"}, "no such file"},
		{[]string{"firewall", "4", "stats", "extra"}, "unexpected argument"},
		{[]string{"proxy", "5"}, "proxy ID needs a subcommand"},
		{[]string{"proxy", "5", "flows"}, `proxy ID: unknown subcommand "flows"`},
		{[]string{"proxy", "extra", "-o", "json"}, "proxy ID needs a subcommand"},
		{[]string{"counter", "6"}, "counter ID needs a subcommand"},
		{[]string{"sdwan"}, "sdwan needs a subcommand"},
		{[]string{"sdwan", "7", "paths"}, `sdwan ID: unknown subcommand "paths"`},
		{[]string{"sdwan", "--grpc"}, "flag needs an argument: -grpc"},
		{[]string{"sdwan", "create"}, "missing arguments: pdr|lbr FLAGS"},
		{[]string{"help", "frobnicate"}, `help: no command "frobnicate"`},
	} {
		rc, out, errs := f.ctl(tc.args...)
		if rc != 2 || out != "" || !strings.HasPrefix(errs, "netmanagerctl: ") || !strings.Contains(errs, tc.err) {
			t.Errorf("%q: rc %d, stdout %q, stderr %q; want 2 and %q", tc.args, rc, out, errs, tc.err)
		}
		if got := f.take(); len(got) != 0 {
			t.Errorf("%q sent %+v", tc.args, got)
		}
	}
}

// help, --help and -h at every level print usage on stdout and exit 0.
func TestHelp(t *testing.T) {
	f := newFakeDaemon(t, fakeAnswers())
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"usage: netmanagerctl [--addr", "Exit status: 0 success, 2 usage error, 3", "firewall ID rules add", "sdwan ID wans", "openapi"}},
		{[]string{"-h"}, []string{"Commands"}},
		{[]string{"help"}, []string{"Commands", "modules update ID"}},
		{[]string{"help", "modules"}, []string{"usage: netmanagerctl modules ...", "modules update ID [--priority P] [--config JSON]"}},
		{[]string{"help", "firewall", "1", "rules", "add"}, []string{"-src-ports", "-json string"}},
		{[]string{"help", "modules", "load"}, []string{"usage: netmanagerctl modules load NAME", "-priority int"}},
		{[]string{"modules", "--help"}, []string{"modules list", "modules get ID PATH"}},
		{[]string{"modules", "help"}, []string{"modules list"}},
		{[]string{"modules", "load", "--help"}, []string{"-services string", "-interfaces string", "-config string"}},
		{[]string{"modules", "update", "-h"}, []string{"PUT /ebpf/ID", "-priority int"}},
		{[]string{"modules", "delete", "--help"}, []string{"-all"}},
		{[]string{"services", "--help"}, []string{"usage: netmanagerctl services", "-json", "-o value"}},
		{[]string{"health", "--help"}, []string{"usage: netmanagerctl health"}},
		{[]string{"deploy", "--help"}, []string{"-pid int", "-unikernel", "-ebpf-modules string", "-ports string"}},
		{[]string{"register", "--help"}, []string{"-client-id string", "-cluster-address string"}},
		{[]string{"metrics", "--help"}, []string{"GET /metrics"}},
		{[]string{"firewall", "--help"}, []string{"firewall ID rules list", "firewall ID stats"}},
		{[]string{"firewall", "1", "--help"}, []string{"usage: netmanagerctl firewall ID ..."}},
		{[]string{"firewall", "1", "rules", "--help"}, []string{"firewall ID rules replace"}},
		{[]string{"firewall", "1", "rules", "add", "--help"}, []string{"-action string", "-direction string", "-dst-ports string", "-priority value"}},
		{[]string{"firewall", "1", "rules", "replace", "--help"}, []string{"-file string"}},
		{[]string{"proxy", "--help"}, []string{"usage: netmanagerctl proxy", "proxy ID"}},
		{[]string{"proxy", "1", "--help"}, []string{"proxy ID sessions", "proxy ID peers"}},
		{[]string{"proxy", "1", "sessions", "--help"}, []string{"usage: netmanagerctl proxy ID sessions"}},
		{[]string{"counter", "1", "counts", "--help"}, []string{"usage: netmanagerctl counter ID counts"}},
		{[]string{"sdwan", "--help"}, []string{"sdwan list", "sdwan ID lbr", "sdwan create"}},
		{[]string{"sdwan", "1", "wans", "--help"}, []string{"usage: netmanagerctl sdwan ID wans"}},
		{[]string{"sdwan", "list", "--help"}, []string{"-grpc string"}},
		{[]string{"sdwan", "create", "--help"}, []string{"usage: netmanagerctl sdwan create pdr|lbr FLAGS"}},
		{[]string{"sdwan", "create", "pdr", "--help"}, []string{"-action string", "-interface string"}},
		{[]string{"sdwan", "delete", "lbr", "--help"}, []string{"-default", "-tos string"}},
	} {
		rc, out, errs := f.ctl(tc.args...)
		if rc != 0 || errs != "" {
			t.Errorf("%q: rc %d, stderr %q", tc.args, rc, errs)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q: stdout lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
	if got := f.take(); len(got) != 0 {
		t.Errorf("help sent %+v", got)
	}
}

// A refusal (4xx) exits 3 with the daemon's message; a failure (5xx), a
// daemon not reached or an answer not understood exits 1.
func TestExitCodes(t *testing.T) {
	f := newFakeDaemon(t, fakeAnswers())
	for _, tc := range []struct {
		args []string
		rc   int
		err  string
	}{
		{[]string{"modules", "show", "999"}, 3, "netmanagerctl: HTTP 404: no module instance \"999\"\n"},
		{[]string{"firewall", "4", "rules", "delete", "missing"}, 3, "netmanagerctl: HTTP 404: no rule \"missing\"\n"},
		{[]string{"metrics", "--socket"}, 2, ""},
		{[]string{"firewall", "8", "rules", "list"}, 1, "netmanagerctl: HTTP 500: read the map: boom\n"},
		{[]string{"firewall", "9", "rules", "list"}, 1, "netmanagerctl: bad answer from the NetManager: "},
		{[]string{"firewall", "9", "rules", "list", "-o", "json"}, 1, "netmanagerctl: bad answer from the NetManager: not JSON"},
		{[]string{"counter", "404", "counts"}, 3, "netmanagerctl: HTTP 404: no route GET /ebpf/404/counts\n"},
	} {
		rc, _, errs := f.ctl(tc.args...)
		if rc != tc.rc || !strings.HasPrefix(errs, tc.err) {
			t.Errorf("%q: rc %d, stderr %q; want %d, %q", tc.args, rc, errs, tc.rc, tc.err)
		}
	}
	// Nothing listens: exit 1, naming where it tried.
	sock := filepath.Join(t.TempDir(), "none.sock")
	rc, _, errs := runCtl("--socket", sock, "health")
	if rc != 1 || !strings.Contains(errs, "cannot reach the NetManager at unix socket "+sock) {
		t.Fatalf("no daemon: rc %d, stderr %q", rc, errs)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	if rc, _, errs = runCtl("--addr", addr, "services"); rc != 1 || !strings.Contains(errs, "connection refused") {
		t.Fatalf("no daemon on TCP: rc %d, stderr %q", rc, errs)
	}
}

// replace --file reads the rules from a file, or stdin for "-".
func TestFirewallReplaceFromFile(t *testing.T) {
	f := newFakeDaemon(t, fakeAnswers())
	path := filepath.Join(t.TempDir(), "rules.json")
	const rules = `[{"action": "allow", "proto": "tcp", "dstPorts": "8080"}, {"action": "deny", "direction": "ingress"}]`
	if err := os.WriteFile(path, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	rc, out, errs := f.ctl("firewall", "4", "rules", "replace", "--file", path)
	if got := f.take(); rc != 0 || len(got) != 1 || got[0].method != "PUT" || got[0].body != rules || !strings.Contains(out, "noping") {
		t.Fatalf("replace --file: rc %d, stderr %q, sent %+v", rc, errs, got)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = r
	t.Cleanup(func() { os.Stdin = old })
	go func() { _, _ = io.WriteString(w, rules); w.Close() }()
	rc, _, errs = f.ctl("firewall", "4", "rules", "replace", "--file", "-")
	if got := f.take(); rc != 0 || len(got) != 1 || got[0].body != rules {
		t.Fatalf("replace --file -: rc %d, stderr %q, sent %+v", rc, errs, got)
	}
}
