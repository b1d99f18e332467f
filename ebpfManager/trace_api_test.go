package ebpfmanager

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/oakestra/netmanager/ebpfManager/trace"
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

// TestTraceRouteRefused: on a kernel that refuses tracing programs the
// trace answers 422 with the refusal, and nothing was started; the drop
// monitor (a tracepoint program) answers 200.
func TestTraceRouteRefused(t *testing.T) {
	h, ft := traceHarness(t, newFakeSession(hop(1, 0, 1, -1)))
	ft.refuse = &trace.UnsupportedError{Kernel: errors.New("fexit program: load program: operation not permitted")}
	ft.drops = newFakeDropSession()
	rec := httptest.NewRecorder()
	h.router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ebpf/drops?service=a&duration=300ms", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("/ebpf/drops on a kernel that refuses fentry/fexit: %d %s, want 200", rec.Code, rec.Body)
	}
	for _, url := range []string{"/ebpf/trace?duration=300ms", "/ebpf/trace?count=1&duration=300ms"} {
		rec := httptest.NewRecorder()
		h.router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
		var body struct{ Error string }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 422 ||
			!strings.Contains(body.Error, "tracing needs BPF trampolines (fentry/fexit on BPF programs), which this kernel refuses: fexit program: load program: operation not permitted; traces work on Debian's 6.1 and later kernels") {
			t.Fatalf("%s: %d %s, want 422 naming the refusal", url, rec.Code, rec.Body)
		}
	}
	if ft.started != 0 {
		t.Fatalf("the tracer started %d times", ft.started)
	}
}
