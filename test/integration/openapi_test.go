package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/ebpfManager/trace"
	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/test/openapitest"
	"github.com/oakestra/netmanager/test/sdwansite"
)

// Every operation of the OpenAPI document is called on real daemons, with a
// valid request and, where it takes input, with invalid ones too: each
// request is checked against the document (valid ones must conform, invalid
// ones must not, or must name what does not exist), and each answer's status
// must be one the operation lists and its body of that status's schema
// (openapi3filter). GET /openapi.json is the document itself.
func TestOpenAPI(t *testing.T) {
	o := &oapi{c: openapitest.NewChecker(t, openapitest.Load(t)), good: map[string]bool{}, bad: map[string]bool{}}
	mods := oapiModulesDir(t)
	t.Run("node", func(t *testing.T) {
		n := newNode(t, "--modules-dir", mods)
		s := o.session(n.d.Socket)
		s.nodeRoutes(t)
		ctrs, addrs := s.deployRoutes(t)
		s.ebpfRoutes(t, ctrs, addrs)
		s.fallbacks(t)
		s.call(t, true, "POST", "/container/undeploy", `{"pid": -1, "serviceName": "app.ns.a.ns", "instanceNumber": 0, "portMappings": ""}`, 200)
		s.call(t, true, "POST", "/docker/undeploy", `{"serviceName": "app.ns.b.ns", "instanceNumber": 0}`, 200) // the older NodeEngine's name
		n.stop(t)
	})
	t.Run("sdwan", func(t *testing.T) {
		a, _ := sdwansite.New(t, sdwansite.Options{Netmanager: netmanagerBin, ModulesDir: mods})
		o.session(a.Daemon.Socket).sdwanRoutes(t, a.ID)
	})
	o.assertCovered(t)
}

// oapiModulesDir is the modules directory that fits the daemon under test:
// beside NETMANAGER_BIN (make build BUILD=dir: dir/bin, dir/modules,
// dir/test-modules) when there is one, else the checkout's build.
func oapiModulesDir(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("NETMANAGER_BIN")
	root := filepath.Dir(filepath.Dir(bin))
	if bin == "" {
		return modulesDir
	}
	if _, err := os.Stat(filepath.Join(root, "modules")); err != nil {
		return modulesDir
	}
	out := t.TempDir()
	for _, sub := range []string{"modules", "test-modules"} {
		entries, _ := os.ReadDir(filepath.Join(root, sub))
		for _, e := range entries {
			if err := os.Symlink(filepath.Join(root, sub, e.Name()), filepath.Join(out, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// oapi is what the subtests share: the checker and which operations were
// called with a valid request (good) and with a bad one (bad: a request
// that does not conform, or names something that does not exist).
type oapi struct {
	c         *openapitest.Checker
	good, bad map[string]bool
}

// session talks to one daemon over its unix socket.
type session struct {
	*oapi
	hc *http.Client
}

func (o *oapi) session(socket string) *session {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &session{oapi: o, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// call sends one request; valid says whether it conforms to the document;
// want, when given, are the statuses it may be answered with. It fails the
// test on a request that is not as valid as said, on a status the operation
// does not list and on a body not of its status's schema.
func (s *session) call(t *testing.T, valid bool, method, path, body string, want ...int) (int, []byte) {
	t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	name := fmt.Sprintf("%s %s %.80s", method, path, body)
	in, verr := s.c.Request(method, path, b)
	if in == nil {
		t.Fatalf("%s: %v", name, verr)
	}
	if (verr == nil) != valid {
		t.Errorf("%s: conforms to the document: %v, want %v (%v)", name, verr == nil, valid, verr)
	}
	status, header, got := s.send(t, method, path, b)
	if err := s.c.Response(in, status, header, got); err != nil {
		t.Errorf("%s: the answer %d %.300s does not conform to the document: %v", name, status, got, err)
	}
	if len(want) > 0 && !slices.Contains(want, status) {
		t.Errorf("%s: %d %.300s, want %v", name, status, got, want)
	}
	op := openapitest.Op(in.Route.Method, in.Route.Path)
	if valid && status == http.StatusOK {
		s.good[op] = true
	}
	if !valid || status == http.StatusNotFound {
		s.bad[op] = true
	}
	return status, got
}

func (s *session) send(t *testing.T, method, path string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://netmanager"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, got
}

// assertCovered: every documented operation was answered 200 to a valid
// request, and every one that takes input (a body or a path parameter)
// was also sent a bad request.
func (o *oapi) assertCovered(t *testing.T) {
	t.Helper()
	var missing, untried []string
	for path, item := range o.c.Doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := openapitest.Op(method, path)
			if !o.good[name] {
				missing = append(missing, name)
			}
			if (op.RequestBody != nil || strings.Contains(path, "{")) && !o.bad[name] {
				untried = append(untried, name)
			}
		}
	}
	sort.Strings(missing)
	sort.Strings(untried)
	if len(missing) > 0 {
		t.Errorf("documented operations never answered 200 to a valid request: %v", missing)
	}
	if len(untried) > 0 {
		t.Errorf("documented operations that take input but got no bad request: %v", untried)
	}
}

// nodeRoutes: the read routes, the document itself, and registration.
func (s *session) nodeRoutes(t *testing.T) {
	_, doc := s.call(t, true, "GET", "/openapi.json", "", 200)
	if !bytes.Equal(doc, api.OpenAPI()) {
		t.Error("GET /openapi.json is not the document this test validates against")
	}
	for _, p := range []string{"/healthz", "/version", "/services", "/proxy", "/metrics"} {
		s.call(t, true, "GET", p, "", 200)
	}
	s.call(t, false, "POST", "/register", `{}`, 400)
	s.call(t, false, "POST", "/register", `{"client_id": 7}`, 400)
	s.call(t, false, "POST", "/register", `{"client_id": "oapi-node",`, 400)
	s.call(t, true, "POST", "/register", `{"client_id": "oapi-node"}`, 200)
	s.call(t, true, "POST", "/register", `{"client_id": "oapi-node"}`, 200)
	// Another id on a node running nothing: a restarted NodeEngine's, which
	// re-registers (deployRoutes asks again with a container running: 409).
	s.call(t, true, "POST", "/register", `{"client_id": "another-node"}`, 200)
	s.call(t, true, "POST", "/register", `{"client_id": "oapi-node"}`, 200)
	big := fmt.Sprintf(`{"client_id": "oapi-node", "cluster_address": "%s"}`, strings.Repeat("a", 1<<20))
	s.call(t, true, "POST", "/register", big, 413)
}

// deployRoutes: containers and unikernels, their conflicts and bad requests.
func (s *session) deployRoutes(t *testing.T) ([2]*container, [2]string) {
	a, b := newContainer(t), newContainer(t)
	dep := func(pid int, name string, inst int, extra string) string {
		return fmt.Sprintf(`{"pid": %d, "serviceName": %q, "instanceNumber": %d%s}`, pid, name, inst, extra)
	}
	s.call(t, true, "POST", "/container/deploy", dep(a.pid, "app.ns.a.ns", 0, `, "portMappings": "18081:80"`), 200)
	s.call(t, true, "POST", "/container/deploy", dep(a.pid, "app.ns.a.ns", 0, `, "portMappings": "18081:80"`), 200)
	s.call(t, true, "POST", "/register", `{"client_id": "another-node"}`, 409)
	s.call(t, true, "POST", "/container/deploy", dep(b.pid, "app.ns.a.ns", 0, ""), 409)
	s.call(t, true, "POST", "/container/deploy", dep(b.pid, "app.ns.b.ns", 0, `, "portMappings": "18081:80"`), 409)
	s.call(t, true, "POST", "/container/deploy", dep(b.pid, "app.ns.b.ns", 0, `, "ebpfModules": [{"name": "nosuch"}]`), 404)
	s.call(t, true, "POST", "/container/deploy", dep(b.pid, "app.ns.b.ns", 0, `, "ebpfModules": [{"name": "badverifier"}]`), 422)
	s.call(t, false, "POST", "/container/deploy", dep(b.pid, "app.ns.b.ns", 0, `, "ebpfModules": [{"name": "packetcounter", "config": 3}]`), 400)
	s.call(t, false, "POST", "/container/deploy", fmt.Sprintf(`{"pid": %d, "serviceName": "app.ns.b.ns"}`, b.pid), 400)
	s.call(t, false, "POST", "/container/deploy", dep(0, "app.ns.b.ns", 0, ""), 400)
	s.call(t, false, "POST", "/container/deploy", dep(b.pid, "app.b.ns", 0, ""), 400)
	s.call(t, false, "POST", "/container/deploy", dep(b.pid, "app.ns.b.ns", -1, ""), 400)
	s.call(t, false, "POST", "/container/deploy", `{"pid": "1", "serviceName": "app.ns.b.ns", "instanceNumber": 0}`, 400)
	s.call(t, true, "POST", "/container/deploy", dep(b.pid, "app.ns.b.ns", 0, `, "portMappings": "`+strings.Repeat("1", 1<<20)+`"`), 413)
	s.call(t, true, "POST", "/container/deploy", dep(b.pid, "app.ns.b.ns", 0, ""), 200)
	s.call(t, true, "POST", "/unikernel/deploy", `{"serviceName": "app.ns.uni.ns", "instanceNumber": 0}`, 200)
	s.call(t, true, "POST", "/unikernel/deploy", `{"pid": 0, "serviceName": "app.ns.uni.ns", "instanceNumber": 0}`, 200)
	s.call(t, false, "POST", "/unikernel/deploy", `{"pid": 5, "serviceName": "app.ns.uni.ns", "instanceNumber": 1}`, 400)
	s.call(t, false, "POST", "/unikernel/deploy", `{"instanceNumber": 1}`, 400)
	s.call(t, true, "POST", "/unikernel/undeploy", `{"serviceName": "app.ns.a.ns", "instanceNumber": 0}`, 409)
	s.call(t, true, "POST", "/container/undeploy", `{"pid": -1, "serviceName": "app.ns.uni.ns", "instanceNumber": 0, "portMappings": ""}`, 409)
	s.call(t, true, "POST", "/unikernel/undeploy", `{"serviceName": "app.ns.nobody.ns", "instanceNumber": 0}`, 404)
	s.call(t, false, "POST", "/unikernel/undeploy", `{"serviceName": "app.ns.uni.ns"}`, 400)
	s.call(t, false, "POST", "/container/undeploy", `{"pid": -1, "instanceNumber": 0}`, 400)
	s.call(t, false, "POST", "/docker/undeploy", `{"pid": -1, "serviceName": "app.ns.a.ns"}`, 400)
	s.call(t, true, "POST", "/container/undeploy", `{"pid": -1, "serviceName": "app.ns.nobody.ns", "instanceNumber": 0}`, 404)
	s.call(t, true, "GET", "/services", "", 200)
	s.call(t, true, "POST", "/unikernel/undeploy", `{"serviceName": "app.ns.uni.ns", "instanceNumber": 0}`, 200)
	var recs []struct {
		ServiceName string `json:"serviceName"`
		NsAddress   string `json:"nsAddress"`
	}
	_, out := s.call(t, true, "GET", "/services", "", 200)
	if err := json.Unmarshal(out, &recs); err != nil || len(recs) != 2 {
		t.Fatalf("services: %s %v", out, err)
	}
	return [2]*container{a, b}, [2]string{recs[0].NsAddress, recs[1].NsAddress}
}

// instanceID is the id of the instance a 200 POST /ebpf answered.
func instanceID(t *testing.T, body []byte) string {
	t.Helper()
	var in struct{ ID string }
	if err := json.Unmarshal(body, &in); err != nil || in.ID == "" {
		t.Fatalf("load answered %s (%v)", body, err)
	}
	return in.ID
}

// ebpfRoutes: the eBPF Manager's routes, then the modules' with traffic
// between the two containers (a ping, inside the test's namespaces).
func (s *session) ebpfRoutes(t *testing.T, ctrs [2]*container, addrs [2]string) {
	s.call(t, true, "GET", "/ebpf", "", 200)
	_, out := s.call(t, true, "POST", "/ebpf", `{"name": "packetcounter", "priority": 10}`, 200)
	pc := instanceID(t, out)
	_, out = s.call(t, true, "POST", "/ebpf", `{"name": "firewall", "priority": 20, "config": {"rules": [{"id": "keep", "action": "allow", "proto": "icmp"}]}}`, 200)
	fw := instanceID(t, out)
	_, out = s.call(t, true, "POST", "/ebpf", `{"name": "proxy", "priority": 50, "services": ["*"]}`, 200)
	px := instanceID(t, out)
	s.call(t, true, "POST", "/ebpf", `{"name": "nosuch"}`, 404)
	s.call(t, true, "POST", "/ebpf", `{"name": "badverifier"}`, 422)
	s.call(t, false, "POST", "/ebpf", `{"name": "Bad/Name"}`, 400)
	s.call(t, false, "POST", "/ebpf", `{"priority": 10}`, 400)
	s.call(t, false, "POST", "/ebpf", `{"name": "packetcounter", "priority": 0}`, 400)
	s.call(t, true, "POST", "/ebpf", `{"name": "firewall", "config": {"defaultPolicy": 3}}`, 400) // the module's config: opaque to the document
	s.call(t, false, "POST", "/ebpf", `{"name": "packetcounter", "config": 3}`, 400)
	s.call(t, false, "POST", "/ebpf", `[]`, 400)
	s.call(t, true, "GET", "/ebpf", "", 200)
	s.call(t, true, "GET", "/ebpf/"+fw, "", 200)
	s.call(t, true, "GET", "/ebpf/doctor", "", 200)
	s.tracingRoutes(t)
	s.call(t, true, "GET", "/ebpf/999", "", 404)
	s.call(t, true, "PUT", "/ebpf/"+pc, `{"priority": 15}`, 200)
	s.call(t, true, "PUT", "/ebpf/"+pc, `{}`, 200)
	s.call(t, false, "PUT", "/ebpf/"+pc, `{"priority": 0}`, 400)
	s.call(t, false, "PUT", "/ebpf/"+pc, `{"config": "x"}`, 400)
	s.call(t, true, "PUT", "/ebpf/999", `{"priority": 15}`, 404)
	assertPing(t, ctrs[0].ns, addrs[1])
	assertPing(t, ctrs[1].ns, addrs[0])
	s.moduleRoutes(t, pc, fw, px)
	s.call(t, true, "DELETE", "/ebpf/"+pc, "", 200)
	s.call(t, true, "DELETE", "/ebpf/"+pc, "", 404)
	s.call(t, true, "GET", "/ebpf/"+pc+"/counts", "", 404)
	s.call(t, true, "DELETE", "/ebpf", "", 200)
	s.call(t, true, "DELETE", "/ebpf", "", 200)
}

// tracingRoutes: GET /ebpf/trace answers a short trace 200 where the kernel
// runs tracing programs, and 422 with the refusal where it refuses them
// (trace.Supported; this sandbox's 6.18.44-fc): either is the operation's
// documented answer to a valid request, so either covers it. GET
// /ebpf/drops (a tracepoint program, no trampoline) answers 200 on both.
func (s *session) tracingRoutes(t *testing.T) {
	refusal := trace.Supported()
	for _, p := range []string{"/ebpf/trace", "/ebpf/drops"} {
		if refusal == nil || p == "/ebpf/drops" {
			s.call(t, true, "GET", p+"?duration=200ms&count=1", "", 200)
			s.call(t, true, "GET", p+"?service=app.ns.nosuch.ns&duration=200ms", "", 404)
		} else {
			_, body := s.call(t, true, "GET", p+"?duration=200ms&count=1", "", 422)
			var e struct{ Error string }
			if want := "cannot be processed: " + refusal.Error(); json.Unmarshal(body, &e) != nil || e.Error != want {
				t.Errorf("GET %s on a kernel that refuses tracing: %s, want the error %q", p, body, want)
			}
			s.good[openapitest.Op("GET", p)] = true
		}
		s.call(t, false, "GET", p+"?direction=up", "", 400)
		s.call(t, false, "GET", p+"?port=70000", "", 400)
	}
	s.call(t, true, "GET", "/ebpf/trace?verdict=drop&proto=icmp&duration=200ms", "", 200, 422)
}

// moduleRoutes: packetcounter's, firewall's and proxy's routes.
func (s *session) moduleRoutes(t *testing.T, pc, fw, px string) {
	s.call(t, true, "GET", "/ebpf/"+pc+"/counts", "", 200)
	s.call(t, true, "GET", "/ebpf/999/counts", "", 404)
	s.call(t, true, "GET", "/ebpf/"+px+"/counts", "", 404)
	f := "/ebpf/" + fw
	s.call(t, true, "GET", f+"/rules", "", 200)
	s.call(t, true, "POST", f+"/rules", `{"action": "deny", "proto": "udp", "dstPorts": "9"}`, 200)
	s.call(t, true, "POST", f+"/rules", `{"id": "web", "action": "allow", "direction": "ingress", "src": "10.18.0.0/16", "proto": "TCP", "dstPorts": "80-81", "priority": 5}`, 200)
	s.call(t, true, "POST", f+"/rules", `{"id": "web", "action": "allow"}`, 409)
	s.call(t, false, "POST", f+"/rules", `{"action": "maybe"}`, 400)
	s.call(t, false, "POST", f+"/rules", `{"proto": "udp"}`, 400)
	s.call(t, false, "POST", f+"/rules", `{"action": "deny", "dstPorts": "eighty"}`, 400)
	s.call(t, true, "POST", f+"/rules", `{"action": "deny", "src": "10.18.0.1/8"}`, 400) // host bits: only the handler knows
	status, _ := s.call(t, true, "POST", f+"/rules", `{"action": "deny", "src": "`+strings.Repeat("1", 1<<20)+`"}`, 400, 413)
	t.Logf("the firewall answers a body over 1 MiB with %d", status)
	s.call(t, true, "GET", f+"/rules", "", 200)
	s.call(t, true, "DELETE", f+"/rules/web", "", 200)
	s.call(t, true, "DELETE", f+"/rules/web", "", 404)
	s.call(t, true, "PUT", f+"/rules", `[{"id": "a", "action": "allow", "proto": "icmp"}, {"action": "deny", "proto": "udp", "srcPorts": "1-1024"}]`, 200)
	s.call(t, false, "PUT", f+"/rules", `[{"action": "x"}]`, 400)
	s.call(t, false, "PUT", f+"/rules", `{"action": "deny"}`, 400)
	s.call(t, true, "PUT", f+"/rules", `[{"id": "a", "action": "allow"}, {"id": "a", "action": "deny"}]`, 400)
	s.call(t, true, "GET", f+"/stats", "", 200)
	s.call(t, true, "DELETE", "/ebpf/"+px+"/rules/a", "", 404)
	s.call(t, true, "POST", "/ebpf/"+pc+"/rules", `{"action": "deny"}`, 404)
	for _, p := range []string{"/translations", "/sessions", "/stats", "/peers"} {
		s.call(t, true, "GET", "/ebpf/"+px+p, "", 200)
	}
	s.call(t, true, "GET", "/ebpf/"+pc+"/peers", "", 404)
	for _, p := range []string{"/counts", "/rules", "/stats", "/translations", "/sessions", "/peers", "/lbr", "/wans"} {
		s.call(t, true, "GET", "/ebpf/999"+p, "", 404)
	}
}

// fallbacks: an unknown path is a 404 and a known path with another method
// a 405, both with the Error shape; neither is an operation of the document.
func (s *session) fallbacks(t *testing.T) {
	for _, c := range []struct {
		method, path string
		want         int
	}{{"GET", "/nosuch", 404}, {"PATCH", "/services", 405}, {"GET", "/container/deploy", 405}, {"POST", "/ebpf/1", 405}} {
		if _, err := s.c.Request(c.method, c.path, nil); !errors.Is(err, openapitest.ErrNoOperation) {
			t.Errorf("%s %s is an operation of the document: %v", c.method, c.path, err)
		}
		status, header, body := s.send(t, c.method, c.path, nil)
		var e struct {
			Error *string `json:"error"`
		}
		if status != c.want || header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &e) != nil || e.Error == nil {
			t.Errorf("%s %s: %d %q %s, want %d with {\"error\": ...}", c.method, c.path, status, header.Get("Content-Type"), body, c.want)
		}
	}
}

// sdwanRoutes: the sdwan module's routes on a gateway; the firewall's
// methods on /rules are a 405 there.
func (s *session) sdwanRoutes(t *testing.T, id string) {
	g := "/ebpf/" + id
	for _, p := range []string{"/rules", "/lbr", "/wans", "/stats"} {
		s.call(t, true, "GET", g+p, "", 200)
	}
	s.call(t, true, "POST", g+"/rules", `{"action": "deny"}`, 405)
	s.call(t, true, "PUT", g+"/rules", `[]`, 405)
	s.call(t, true, "DELETE", g+"/rules/1", "", 404)
	s.call(t, true, "GET", g+"/counts", "", 404)
	s.call(t, true, "GET", "/ebpf/"+id, "", 200)
}
