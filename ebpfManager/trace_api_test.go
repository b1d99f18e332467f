package ebpfmanager

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestTraceRoute: bad parameters are 400 naming the parameter, an unknown
// service 404, a trace streams one JSON path per line.
func TestTraceRoute(t *testing.T) {
	h, _ := traceHarness(t, newFakeSession(hop(1, 0, 1, -1), hop(2, 0, 1, 2)))
	for _, c := range []struct {
		url    string
		status int
		want   string
	}{
		{"/ebpf/trace?direction=up", 400, "parameter direction"},
		{"/ebpf/trace?port=70000", 400, "parameter port"},
		{"/ebpf/trace?proto=ipx", 400, "parameter proto"},
		{"/ebpf/trace?host=nope", 400, "parameter host"},
		{"/ebpf/trace?duration=-1s", 400, "parameter duration"},
		{"/ebpf/trace?verdict=maybe", 400, "parameter verdict"},
		{"/ebpf/drops?verdict=drop", 400, "parameter verdict"},
		{"/ebpf/trace?service=nope", 404, "no module instance is attached to service nope"},
		{"/ebpf/trace?service=a&direction=out&duration=300ms", 200, `"verdict":"drop"`},
	} {
		rec := httptest.NewRecorder()
		h.router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.url, nil))
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.want) {
			t.Fatalf("%s: %d %s, want %d with %q", c.url, rec.Code, rec.Body, c.status, c.want)
		}
		if c.status == 200 {
			if ct := rec.Header().Get("Content-Type"); ct != "application/x-ndjson" {
				t.Fatalf("content type %q", ct)
			}
			var p PacketPath
			if err := json.Unmarshal([]byte(strings.Split(rec.Body.String(), "\n")[0]), &p); err != nil || len(p.Hops) != 2 {
				t.Fatalf("line %q: %v", rec.Body, err)
			}
		}
	}
}
