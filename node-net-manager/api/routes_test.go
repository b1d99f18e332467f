package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/httpjson"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

// fakeDeployer validates like the real manager (deploy.Request.Validate) and
// keeps records in a map, so the routes' status codes are tested end to end.
type fakeDeployer struct {
	recs         map[string]deploy.Record
	last         deploy.Request
	lastUndeploy undeployCall
}

type undeployCall struct {
	kind deploy.Kind
	name string
	inst int
}

func (f *fakeDeployer) Deploy(_ context.Context, req deploy.Request) (deploy.Record, error) {
	f.last = req
	if _, err := req.Validate(); err != nil {
		return deploy.Record{}, err
	}
	k := fmt.Sprintf("%s/%d", req.ServiceName, req.Instance)
	if _, ok := f.recs[k]; ok {
		return deploy.Record{}, fmt.Errorf("%w: already deployed", errdefs.ErrConflict)
	}
	rec := deploy.Record{Kind: req.Kind, ServiceName: req.ServiceName, Instance: req.Instance, NsAddress: netip.MustParseAddr("10.18.0.2"), NsAddressV6: netip.MustParseAddr("fd00:18::2")}
	f.recs[k] = rec
	return rec, nil
}

func (f *fakeDeployer) Undeploy(_ context.Context, kind deploy.Kind, name string, inst int) error {
	f.lastUndeploy = undeployCall{kind, name, inst}
	if err := table.ValidateServiceName(name); err != nil {
		return err
	}
	k := fmt.Sprintf("%s/%d", name, inst)
	if _, ok := f.recs[k]; !ok {
		return fmt.Errorf("%w: instance %d of %s is not deployed", errdefs.ErrNotFound, inst, name)
	}
	delete(f.recs, k)
	return nil
}

func (f *fakeDeployer) List() []deploy.Record {
	out := []deploy.Record{}
	for _, r := range f.recs {
		out = append(out, r)
	}
	return out
}

func newServer() (*fakeDeployer, http.Handler) {
	f := &fakeDeployer{recs: map[string]deploy.Record{}}
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	return f, NewRouter(Options{Deployer: f, Version: "test", Log: log})
}

func do(h http.Handler, method, path, body string) (int, map[string]any) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	if rec.Header().Get("Content-Type") != "application/json" {
		out = map[string]any{"error": "response is not JSON"}
	}
	return rec.Code, out
}

func TestDeployAndUndeploy(t *testing.T) {
	f, h := newServer()
	code, out := do(h, "POST", "/container/deploy", `{"pid": 42, "serviceName": "app.ns.web.ns", "instanceNumber": 0, "portMappings": "8080:80", "extra": true}`)
	if code != 200 || out["nsAddress"] != "10.18.0.2" || out["nsAddressv6"] != "fd00:18::2" || out["serviceName"] != "app.ns.web.ns" {
		t.Fatalf("deploy: %d %v", code, out)
	}
	if f.last.PID != 42 || f.last.PortMappings != "8080:80" || f.last.Kind != deploy.KindContainer {
		t.Fatalf("request passed on: %+v", f.last)
	}
	code, out = do(h, "POST", "/container/undeploy", `{"pid": -1, "serviceName": "app.ns.web.ns", "instanceNumber": 0}`)
	if code != 200 {
		t.Fatalf("undeploy: %d %v", code, out)
	}
	// The older NodeEngine's route undeploys a container the same way.
	if code, out = do(h, "POST", "/container/deploy", `{"pid": 43, "serviceName": "app.ns.old.ns", "instanceNumber": 2}`); code != 200 {
		t.Fatalf("deploy: %d %v", code, out)
	}
	code, out = do(h, "POST", "/docker/undeploy", `{"pid": -1, "serviceName": "app.ns.old.ns", "instanceNumber": 2}`)
	if code != 200 || f.lastUndeploy != (undeployCall{deploy.KindContainer, "app.ns.old.ns", 2}) || out["instanceNumber"] != 2.0 {
		t.Fatalf("docker undeploy: %d %v %+v", code, out, f.lastUndeploy)
	}
	code, _ = do(h, "POST", "/unikernel/deploy", `{"pid": 0, "serviceName": "app.ns.uk.ns", "instanceNumber": 1}`)
	if code != 200 || f.last.Kind != deploy.KindUnikernel {
		t.Fatalf("unikernel deploy: %d %+v", code, f.last)
	}
	code, _ = do(h, "POST", "/unikernel/deploy", `{"serviceName": "app.ns.uk2.ns", "instanceNumber": 1}`)
	if code != 200 {
		t.Fatalf("unikernel deploy without pid: %d", code)
	}
}

func TestBadRequests(t *testing.T) {
	cases := []struct {
		name, method, path, body string
		code                     int
		text                     string
	}{
		{"malformed", "POST", "/container/deploy", `{"pid": 42,`, 400, "malformed JSON"},
		{"syntax", "POST", "/container/deploy", `{pid: 42}`, 400, "malformed JSON at byte"},
		{"empty", "POST", "/container/deploy", ``, 400, "empty"},
		{"array", "POST", "/container/deploy", `[1]`, 400, "JSON object"},
		{"trailing", "POST", "/container/deploy", `{"pid": 1} {}`, 400, "data after"},
		{"pid string", "POST", "/container/deploy", `{"pid": "42", "serviceName": "a.b.c.d", "instanceNumber": 0}`, 400, `"pid" must be of type int`},
		{"ports number", "POST", "/container/deploy", `{"pid": 4, "serviceName": "a.b.c.d", "instanceNumber": 0, "portMappings": 80}`, 400, `"portMappings" must be of type string`},
		{"no pid", "POST", "/container/deploy", `{"serviceName": "a.b.c.d", "instanceNumber": 0}`, 400, "pid is required"},
		{"no instance", "POST", "/container/deploy", `{"pid": 4, "serviceName": "a.b.c.d"}`, 400, "instanceNumber is required"},
		{"bad name", "POST", "/container/deploy", `{"pid": 4, "serviceName": "web", "instanceNumber": 0}`, 400, "four dot-separated parts"},
		{"bad ports", "POST", "/container/deploy", `{"pid": 4, "serviceName": "a.b.c.d", "instanceNumber": 0, "portMappings": "99999"}`, 400, "portMappings"},
		{"unknown undeploy", "POST", "/container/undeploy", `{"serviceName": "a.b.c.d", "instanceNumber": 3}`, 404, "not deployed"},
		{"undeploy no instance", "POST", "/container/undeploy", `{"serviceName": "a.b.c.d"}`, 400, "instanceNumber is required"},
		{"register no id", "POST", "/register", `{"cluster_address": "x"}`, 400, "client_id is required"},
		{"unknown route", "GET", "/nope", ``, 404, "no route"},
		{"wrong method", "GET", "/container/deploy", ``, 405, "not allowed"},
		{"huge", "POST", "/container/deploy", `{"serviceName": "` + strings.Repeat("a", httpjson.MaxBody) + `"}`, 413, "larger than 1048576 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, h := newServer()
			code, out := do(h, c.method, c.path, c.body)
			msg, _ := out["error"].(string)
			if code != c.code || !strings.Contains(msg, c.text) {
				t.Fatalf("got %d %q, want %d containing %q", code, msg, c.code, c.text)
			}
			if len(f.recs) != 0 {
				t.Fatalf("a refused request left records: %v", f.recs)
			}
		})
	}
}

func TestDuplicateDeployIsConflict(t *testing.T) {
	_, h := newServer()
	body := `{"pid": 42, "serviceName": "app.ns.web.ns", "instanceNumber": 0}`
	if code, _ := do(h, "POST", "/container/deploy", body); code != 200 {
		t.Fatal(code)
	}
	if code, out := do(h, "POST", "/container/deploy", body); code != 409 {
		t.Fatalf("second deploy: %d %v", code, out)
	}
}

func TestRegister(t *testing.T) {
	_, h := newServer()
	code, out := do(h, "POST", "/register", `{"client_id": "node-1", "cluster_address": "192.0.2.10", "cluster_port": 10000}`)
	if code != 200 || out["mode"] != "standalone" || out["client_id"] != "node-1" {
		t.Fatalf("register: %d %v", code, out)
	}
	if code, _ := do(h, "POST", "/register", `{"client_id": "node-1", "cluster_address": "192.0.2.10"}`); code != 200 {
		t.Fatalf("re-register with the same id: %d", code)
	}
	if code, _ := do(h, "POST", "/register", `{"client_id": "node-2"}`); code != 409 {
		t.Fatalf("register with another id: %d", code)
	}
}

func TestReadRoutes(t *testing.T) {
	_, h := newServer()
	if code, out := do(h, "GET", "/healthz", ""); code != 200 || out["status"] != "ok" {
		t.Fatalf("healthz: %d %v", code, out)
	}
	if code, out := do(h, "GET", "/version", ""); code != 200 || out["version"] != "test" {
		t.Fatalf("version: %d %v", code, out)
	}
	do(h, "POST", "/container/deploy", `{"pid": 42, "serviceName": "app.ns.web.ns", "instanceNumber": 0}`)
	req := httptest.NewRequest("GET", "/services", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var list []deploy.Record
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list) != 1 || list[0].ServiceName != "app.ns.web.ns" {
		t.Fatalf("services: %s %v", rec.Body.String(), err)
	}
}

func TestPanickingHandlerIs500(t *testing.T) {
	f := &fakeDeployer{recs: map[string]deploy.Record{}}
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	r := NewRouter(Options{Deployer: f, Log: log})
	r.HandleFunc("/boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	code, out := do(r, "GET", "/boom", "")
	if code != 500 || !strings.Contains(fmt.Sprint(out["error"]), "internal error") {
		t.Fatalf("got %d %v", code, out)
	}
	if code, _ := do(r, "GET", "/healthz", ""); code != 200 {
		t.Fatalf("router unusable after a panic: %d", code)
	}
}

type fakeRegistrar struct {
	err   error
	calls []string
	id    string // registered as
	// alive, when set, is the instance of the previous NodeEngine that
	// still runs: Leave refuses.
	alive   string
	removed int // what Leave removes
}

func (f *fakeRegistrar) ClientID() string { return f.id }

func (f *fakeRegistrar) Register(_ context.Context, id, addr string) (cluster.Registered, error) {
	f.calls = append(f.calls, id+"@"+addr)
	if f.err != nil {
		return cluster.Registered{}, f.err
	}
	f.id = id
	return cluster.Registered{Broker: "tcp://" + addr + ":10003", Subnet: cluster.SubnetResult{Address: "10.18.1.0", AddressV6: "fd00:18:1::"},
		NodeSubnet: netip.MustParsePrefix("10.18.1.0/26"), NodeSubnetV6: netip.MustParsePrefix("fd00:18:1::/120")}, nil
}

func (f *fakeRegistrar) Leave(context.Context) (int, error) {
	f.calls = append(f.calls, "leave")
	if f.alive != "" {
		return 0, fmt.Errorf("%w: %s still runs", errdefs.ErrConflict, f.alive)
	}
	f.id = ""
	return f.removed, nil
}

func newRegServer(f *fakeRegistrar) http.Handler {
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	return NewRouter(Options{Deployer: &fakeDeployer{recs: map[string]deploy.Record{}}, Registrar: f, Log: log})
}

// A registration naming a cluster joins it; one the cluster refuses is an
// error with the registrar's status, and leaves the node unregistered.
func TestRegisterWithCluster(t *testing.T) {
	f := &fakeRegistrar{err: fmt.Errorf("%w: cluster broker tcp://192.0.2.10:10003: connection refused", errdefs.ErrUnavailable)}
	h := newRegServer(f)
	code, out := do(h, "POST", "/register", `{"client_id": "node-1", "cluster_address": "192.0.2.10"}`)
	if code != 503 || !strings.Contains(fmt.Sprint(out["error"]), "tcp://192.0.2.10:10003") {
		t.Fatalf("unreachable cluster: %d %v", code, out)
	}
	f.err = nil
	code, out = do(h, "POST", "/register", `{"client_id": "node-2", "cluster_address": "192.0.2.10"}`)
	if code != 200 || out["mode"] != "cluster" || out["subnet"] != "10.18.1.0/26" || out["subnetv6"] != "fd00:18:1::/120" ||
		out["clusterSubnet"] != "10.18.1.0" || out["clusterSubnetV6"] != "fd00:18:1::" || out["broker"] != "tcp://192.0.2.10:10003" {
		t.Fatalf("register with the cluster after a refusal: %d %v", code, out)
	}
	if strings.Join(f.calls, " ") != "node-1@192.0.2.10 node-2@192.0.2.10" {
		t.Fatalf("registrar calls: %v", f.calls)
	}
}

// A node registered at start (flags) takes the same id at POST /register
// without leaving; another id while an instance runs is a 409 naming the
// id and the instance.
func TestRegisterAfterStartupRegistration(t *testing.T) {
	f := &fakeRegistrar{id: "node-1", alive: "instance 0 of app.ns.web.ns"}
	h := newRegServer(f)
	if code, out := do(h, "POST", "/register", `{"client_id": "node-2", "cluster_address": "192.0.2.10"}`); code != 409 ||
		!strings.Contains(fmt.Sprint(out["error"]), `"node-1"`) || !strings.Contains(fmt.Sprint(out["error"]), "instance 0 of app.ns.web.ns") {
		t.Fatalf("another id: %d %v", code, out)
	}
	if code, out := do(h, "POST", "/register", `{"client_id": "node-1", "cluster_address": "192.0.2.10"}`); code != 200 || out["mode"] != "cluster" {
		t.Fatalf("the same id: %d %v", code, out)
	}
	if strings.Join(f.calls, " ") != "leave node-1@192.0.2.10" {
		t.Fatalf("registrar calls: %v", f.calls)
	}
}

// A restarted NodeEngine registers under a new id: once the one before is
// gone, the node leaves its registration and takes the new id (200 with
// the registration); the new id again does not leave again. It works the
// same for a node registered standalone, and from cluster to standalone.
func TestReregisterAfterNodeEngineRestart(t *testing.T) {
	f := &fakeRegistrar{removed: 2}
	h := newRegServer(f)
	steps := []struct{ body, mode, calls string }{
		{`{"client_id": "A", "cluster_address": "192.0.2.10"}`, "cluster", "A@192.0.2.10"},
		{`{"client_id": "B", "cluster_address": "192.0.2.10"}`, "cluster", "leave B@192.0.2.10"},
		{`{"client_id": "B", "cluster_address": "192.0.2.10"}`, "cluster", "B@192.0.2.10"},
		{`{"client_id": "C"}`, "standalone", "leave"},
		{`{"client_id": "C"}`, "standalone", ""},
		{`{"client_id": "D"}`, "standalone", "leave"},
		{`{"client_id": "E", "cluster_address": "192.0.2.10"}`, "cluster", "leave E@192.0.2.10"},
	}
	for _, st := range steps {
		f.calls = nil
		code, out := do(h, "POST", "/register", st.body)
		if code != 200 || out["mode"] != st.mode || !strings.Contains(st.body, fmt.Sprint(out["client_id"])) {
			t.Fatalf("register %s: %d %v", st.body, code, out)
		}
		if got := strings.Join(f.calls, " "); got != st.calls {
			t.Fatalf("register %s: registrar calls %q, want %q", st.body, got, st.calls)
		}
	}
}

// While an instance of the previous NodeEngine runs, another id is a 409
// naming the node's id and the instance, and the node stays registered as
// before; a re-registration whose cluster then fails leaves the node
// unregistered, so the next id registers without leaving again.
func TestReregisterRefused(t *testing.T) {
	f := &fakeRegistrar{alive: "instance 3 of app.ns.web.ns"}
	h := newRegServer(f)
	if code, out := do(h, "POST", "/register", `{"client_id": "A"}`); code != 200 {
		t.Fatalf("register A: %d %v", code, out)
	}
	code, out := do(h, "POST", "/register", `{"client_id": "B"}`)
	if msg := fmt.Sprint(out["error"]); code != 409 || !strings.Contains(msg, `"A"`) || !strings.Contains(msg, "instance 3 of app.ns.web.ns") {
		t.Fatalf("register B while A's instance runs: %d %v", code, out)
	}
	if code, out := do(h, "POST", "/register", `{"client_id": "A"}`); code != 200 || out["client_id"] != "A" {
		t.Fatalf("register A again: %d %v", code, out)
	}
	f.alive, f.err = "", fmt.Errorf("%w: cluster broker down", errdefs.ErrUnavailable)
	if code, out := do(h, "POST", "/register", `{"client_id": "B", "cluster_address": "192.0.2.10"}`); code != 503 {
		t.Fatalf("re-register as B with the cluster down: %d %v", code, out)
	}
	f.calls, f.err = nil, nil
	if code, out := do(h, "POST", "/register", `{"client_id": "C", "cluster_address": "192.0.2.10"}`); code != 200 || out["client_id"] != "C" {
		t.Fatalf("register C after the failed re-registration: %d %v", code, out)
	}
	if strings.Join(f.calls, " ") != "C@192.0.2.10" {
		t.Fatalf("registrar calls: %v", f.calls)
	}
}

func TestDecideRegister(t *testing.T) {
	for _, tc := range []struct {
		cur, next string
		canLeave  bool
		want      registerStep
	}{
		{"", "A", false, registerAs},
		{"", "A", true, registerAs},
		{"A", "A", true, registerAs},
		{"A", "A", false, registerAs},
		{"A", "B", true, reregister},
		{"A", "B", false, refuseOther},
	} {
		if got := decideRegister(tc.cur, tc.next, tc.canLeave); got != tc.want {
			t.Errorf("decideRegister(%q, %q, %v) = %d, want %d", tc.cur, tc.next, tc.canLeave, got, tc.want)
		}
	}
}
