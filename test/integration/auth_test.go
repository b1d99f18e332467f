package integration

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/test/nstest"
)

// apiCall is one request to the API on TCP.
type apiCall struct{ method, path, body string }

// everyRoute is every route and method of the API, the eBPF Manager's and
// the modules' (pc: a packet counter, fw: a firewall) included, plus an
// unknown route and a method a route does not take.
func everyRoute(pc, fw string) []apiCall {
	deploy := `{"pid": 1, "serviceName": "app.ns.x.ns", "instanceNumber": 0}`
	undeploy := `{"serviceName": "app.ns.a.ns", "instanceNumber": 0}`
	return []apiCall{
		{"POST", "/register", `{"client_id": "intruder"}`},
		{"POST", "/container/deploy", deploy}, {"POST", "/container/undeploy", undeploy}, {"POST", "/docker/undeploy", undeploy},
		{"POST", "/unikernel/deploy", `{"serviceName": "app.ns.u.ns", "instanceNumber": 0}`}, {"POST", "/unikernel/undeploy", undeploy},
		{"GET", "/services", ""}, {"GET", "/proxy", ""}, {"GET", "/version", ""}, {"GET", "/metrics", ""}, {"GET", "/openapi.json", ""},
		{"GET", "/ebpf", ""}, {"POST", "/ebpf", `{"name": "packetcounter"}`}, {"DELETE", "/ebpf", ""},
		{"GET", "/ebpf/" + pc, ""}, {"PUT", "/ebpf/" + pc, `{"priority": 500}`}, {"DELETE", "/ebpf/" + pc, ""},
		{"GET", "/ebpf/" + pc + "/counts", ""},
		{"GET", "/ebpf/" + fw + "/rules", ""}, {"POST", "/ebpf/" + fw + "/rules", `{"action": "allow"}`},
		{"PUT", "/ebpf/" + fw + "/rules", `[]`}, {"DELETE", "/ebpf/" + fw + "/rules/r1", ""}, {"GET", "/ebpf/" + fw + "/stats", ""},
		{"POST", "/nosuch", "{}"}, {"PUT", "/healthz", ""},
	}
}

// curlAs sends c to the node's API on TCP (127.0.0.1:6000 in its
// namespace) from curl running as uid (65534: with setpriv, no groups),
// with authz as the Authorization header when set; it returns the status
// and the body.
func curlAs(t *testing.T, n *node, uid int, authz string, c apiCall) (int, string) {
	t.Helper()
	args := []string{"--net=" + n.ns.Path()}
	if uid != 0 {
		id := strconv.Itoa(uid)
		args = append(args, "setpriv", "--reuid="+id, "--regid="+id, "--clear-groups")
	}
	args = append(args, "curl", "-sS", "-m", "30", "-X", c.method, "-w", "\n%{http_code}")
	if authz != "" {
		args = append(args, "-H", "Authorization: "+authz)
	}
	if c.body != "" {
		args = append(args, "-H", "Content-Type: application/json", "--data-binary", c.body)
	}
	cx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cx, "nsenter", append(args, "http://127.0.0.1:6000"+c.path)...).Output()
	if err != nil {
		t.Fatalf("curl %s %s as uid %d: %v: %s", c.method, c.path, uid, err, out)
	}
	s := strings.TrimSpace(string(out))
	i := strings.LastIndexByte(s, '\n')
	code, err := strconv.Atoi(s[i+1:])
	if err != nil {
		t.Fatalf("curl %s %s: no status in %q", c.method, c.path, s)
	}
	return code, s[:max(i, 0)]
}

// nodeView is what a refused request must leave alone: the node's
// network, its services and its module instances.
func nodeView(t *testing.T, n *node) string {
	t.Helper()
	var svc, mods []byte
	var err error
	if svc, err = n.d.Client.Get(ctx(t), "/services"); err == nil {
		mods, err = n.d.Client.Get(ctx(t), "/ebpf")
	}
	if err != nil {
		t.Fatal(err)
	}
	return n.settled(t) + "\n" + string(svc) + "\n" + string(mods)
}

// A user who is not root, not in the unix socket's group and has no token
// is refused on every route of the API on TCP (403; 401 with a wrong
// token), and the node stays as it was; root is served, and so is any
// user with the token (copied for them by the operator) or, once the
// socket's group is theirs, without it. GET /healthz answers anyone.
func TestAPIAuthTCP(t *testing.T) {
	n := newNode(t)
	c := newContainer(t)
	deployContainer(t, n, c, "app.ns.a.ns", 0, "")
	pc := loadModule(t, n, `{"name": "packetcounter"}`).ID
	fw := loadModule(t, n, `{"name": "firewall", "config": {"rules": [{"id": "r1", "action": "allow"}]}}`).ID
	before := nodeView(t, n)

	calls := everyRoute(pc, fw)
	for _, c := range calls {
		if code, body := curlAs(t, n, 65534, "", c); code != http.StatusForbidden ||
			!strings.Contains(body, `the API on TCP answers root, members of group root (the unix socket's) or a bearer token from `+n.d.TokenFile+`; this connection's process runs as uid 65534`) {
			t.Errorf("%s %s as nobody: %d %s, want 403 naming uid 65534", c.method, c.path, code, body)
		}
		if code, body := curlAs(t, n, 65534, "Bearer not-the-token", c); code != http.StatusUnauthorized || !strings.Contains(body, "is not \\\"Bearer \\\" and the token") {
			t.Errorf("%s %s as nobody, wrong token: %d %s, want 401", c.method, c.path, code, body)
		}
	}
	if code, _ := curlAs(t, n, 0, "Bearer not-the-token", apiCall{"DELETE", "/ebpf", ""}); code != http.StatusUnauthorized {
		t.Errorf("DELETE /ebpf as root with a wrong token: %d, want 401", code)
	}
	if got := nodeView(t, n); got != before {
		t.Fatalf("refused requests changed the node:\n%s", nstest.Diff(before, got))
	}
	if code, body := curlAs(t, n, 65534, "", apiCall{"GET", "/healthz", ""}); code != http.StatusOK {
		t.Errorf("GET /healthz as nobody: %d %s", code, body)
	}
	checkAuditTrail(t, n, len(calls))
	t.Run("root", func(t *testing.T) { allowedAs(t, n, 0, "", fw) })
	t.Run("token", func(t *testing.T) { allowedAs(t, n, 65534, "Bearer "+n.d.Token(t), fw) })
	t.Run("ctl with a copy of the token", func(t *testing.T) { ctlWithToken(t, n) })
	t.Run("socket group", func(t *testing.T) {
		if err := os.Chown(n.d.Socket, 0, 65534); err != nil { // nobody's primary group
			t.Fatal(err)
		}
		allowedAs(t, n, 65534, "", fw)
		if err := os.Chown(n.d.Socket, 0, 0); err != nil {
			t.Fatal(err)
		}
		if code, _ := curlAs(t, n, 65534, "", apiCall{"GET", "/services", ""}); code != http.StatusForbidden {
			t.Errorf("after chgrp back to root: %d, want 403", code)
		}
	})
}

// allowedAs: uid (with authz) reads, loads a module instance, changes a
// module's state through its route and deletes the instance.
func allowedAs(t *testing.T, n *node, uid int, authz, fw string) {
	t.Helper()
	for _, c := range []apiCall{{"GET", "/services", ""}, {"GET", "/ebpf", ""}, {"GET", "/metrics", ""},
		{"PUT", "/ebpf/" + fw + "/rules", `[{"id": "r1", "action": "allow"}]`}} {
		if code, body := curlAs(t, n, uid, authz, c); code != http.StatusOK {
			t.Errorf("%s %s as uid %d: %d %s", c.method, c.path, uid, code, body)
		}
	}
	code, body := curlAs(t, n, uid, authz, apiCall{"POST", "/ebpf", `{"name": "packetcounter"}`})
	id := instanceID(t, []byte(body))
	if code != http.StatusOK {
		t.Fatalf("POST /ebpf as uid %d: %d %s", uid, code, body)
	}
	if code, body := curlAs(t, n, uid, authz, apiCall{"DELETE", "/ebpf/" + id, ""}); code != http.StatusOK {
		t.Errorf("DELETE /ebpf/%s as uid %d: %d %s", id, uid, code, body)
	}
}

// checkAuditTrail: every refusal is counted and logged with the uid, each
// refused write once.
func checkAuditTrail(t *testing.T, n *node, calls int) {
	t.Helper()
	fams := scrapeMetrics(t, n)
	if v := mustSample(t, fams, "netmanager_api_refused_total", map[string]string{"reason": "peer_not_allowed"}); v != float64(calls) {
		t.Errorf("refused peer_not_allowed: %v, want %d", v, calls)
	}
	if v := mustSample(t, fams, "netmanager_api_refused_total", map[string]string{"reason": "wrong_token"}); v != float64(calls+1) {
		t.Errorf("refused wrong_token: %v, want %d", v, calls+1)
	}
	if v := mustSample(t, fams, "netmanager_api_writes_total", map[string]string{"method": "DELETE", "route_group": "ebpf", "status": "403", "who_kind": "none"}); v != 3 {
		t.Errorf("refused DELETEs on /ebpf by nobody (the instances, one, a rule): %v, want 3", v)
	}
	if v := mustSample(t, fams, "netmanager_api_writes_total", map[string]string{"method": "POST", "route_group": "ebpf", "status": "200", "who_kind": "unix"}); v != 2 {
		t.Errorf("module loads over the socket: %v, want 2", v)
	}
	log := n.d.Log()
	if c := strings.Count(log, `msg="API request refused" method=DELETE path=/ebpf reason=peer_not_allowed status=403 transport=tcp uid=65534 who=none`); c != 1 {
		t.Errorf("refusal of DELETE /ebpf logged %d times, want once:\n%s", c, log)
	}
	if !strings.Contains(log, `msg="API write" method=POST path=/container/deploy pid=`) || !strings.Contains(log, `status=200 transport=unix uid=0 who=unix`) {
		t.Errorf("the deploy over the socket is not in the audit log:\n%s", log)
	}
}

// ctlWithToken: netmanagerctl run as nobody with a copy of the token the
// operator gave them (NETMANAGER_TOKEN_FILE) is served; without, refused.
func ctlWithToken(t *testing.T, n *node) {
	dir, err := os.MkdirTemp("", "nm-token-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	copyFile := filepath.Join(dir, "token")
	if err := os.WriteFile(copyFile, []byte(n.d.Token(t)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, copyFile} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	run := func(env ...string) (string, error) {
		cmd := exec.Command("nsenter", "--net="+n.ns.Path(), "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ctlBin, "modules", "list")
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("NETMANAGER_TOKEN_FILE=" + copyFile); err != nil || !strings.Contains(out, "packetcounter") {
		t.Errorf("netmanagerctl as nobody with the token: %v\n%s", err, out)
	}
	out, err := run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(out, "HTTP 403") {
		t.Errorf("netmanagerctl as nobody without a token: %v\n%s", err, out)
	}
}
