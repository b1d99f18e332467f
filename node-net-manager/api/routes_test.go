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

// A registration naming a cluster joins it; one the cluster refuses is an
// error with the registrar's status, and leaves the node unregistered.
func TestRegisterWithCluster(t *testing.T) {
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	f := &fakeRegistrar{err: fmt.Errorf("%w: cluster broker tcp://192.0.2.10:10003: connection refused", errdefs.ErrUnavailable)}
	h := NewRouter(Options{Deployer: &fakeDeployer{recs: map[string]deploy.Record{}}, Registrar: f, Log: log})
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
	if code, out := do(h, "POST", "/register", `{"client_id": "node-3", "cluster_address": "192.0.2.10"}`); code != 409 {
		t.Fatalf("register with another id: %d %v", code, out)
	}
	if len(f.calls) != 2 {
		t.Fatalf("registrar calls: %v", f.calls)
	}
}

// A node registered at start (flags) refuses another id at POST /register,
// and takes the same one.
func TestRegisterAfterStartupRegistration(t *testing.T) {
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	f := &fakeRegistrar{id: "node-1"}
	h := NewRouter(Options{Deployer: &fakeDeployer{recs: map[string]deploy.Record{}}, Registrar: f, Log: log})
	if code, out := do(h, "POST", "/register", `{"client_id": "node-2", "cluster_address": "192.0.2.10"}`); code != 409 || !strings.Contains(fmt.Sprint(out["error"]), "node-1") {
		t.Fatalf("another id: %d %v", code, out)
	}
	if code, out := do(h, "POST", "/register", `{"client_id": "node-1", "cluster_address": "192.0.2.10"}`); code != 200 || out["mode"] != "cluster" {
		t.Fatalf("the same id: %d %v", code, out)
	}
}
