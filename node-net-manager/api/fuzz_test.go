package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/deploy"
)

var fuzzRoutes = []string{"/register", "/container/deploy", "/container/undeploy", "/unikernel/deploy", "/unikernel/undeploy"}

// Any body on any node route answers JSON with a 2xx or 4xx status — never
// a 5xx or a panic — and a deploy that answers 200 was a valid request.
func FuzzNodeAPI(f *testing.F) {
	for i, body := range []string{
		`{"client_id": "node-1"}`,
		`{"pid": 4242, "serviceName": "app.ns.svc.ns", "instanceNumber": 0, "portMappings": "8080:80/tcp;53:53/udp"}`,
		`{"serviceName": "app.ns.svc.ns", "instanceNumber": 0}`,
		`{"serviceName": "app.ns.svc.ns", "instanceNumber": 1, "ebpfModules": [{"name": "firewall", "config": {}}]}`,
		`{"pid": -1, "serviceName": "a.b.c.d", "instanceNumber": 2}`,
		`{"pid": 1e99}`, `[]`, `null`, `{"portMappings": "70000:1"}`,
	} {
		f.Add(uint8(i), body)
	}
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		d := &fakeDeployer{recs: map[string]deploy.Record{}}
		h := NewRouter(Options{Deployer: d, Log: log})
		path := fuzzRoutes[int(route)%len(fuzzRoutes)]
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		if rec.Code >= 500 || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("POST %s %q: %d %s", path, body, rec.Code, rec.Body)
		}
		if rec.Code == 200 && strings.HasSuffix(path, "/deploy") {
			if _, err := d.last.Validate(); err != nil {
				t.Fatalf("POST %s %q: 200 for an invalid request: %v", path, body, err)
			}
		}
	})
}
