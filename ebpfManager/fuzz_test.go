package ebpfmanager

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Any body on POST /ebpf and PUT /ebpf/{id} answers JSON with a 2xx or
// 4xx status — never a 5xx or a panic — and a refused one leaves the
// manager as it was.
func FuzzEBPFAPI(f *testing.F) {
	for _, s := range []string{
		`{"name": "counter"}`, `{"name": "dropper", "priority": 20, "config": {"x": 1}}`,
		`{"name": "other", "services": ["app.ns.web.ns"], "interfaces": ["eth9"]}`,
		`{"name": "../x"}`, `{"config": {"v": 2}, "priority": 30}`, `{"priority": -1}`, `{"name": "counter", "services": ["a.b"]}`,
	} {
		f.Add(false, s)
		f.Add(true, s)
	}
	h := newHarness(f, ModeTCX) // one per fuzzing process: inputs leave it as they found it
	h.load(f, "counter", 10)
	f.Fuzz(func(t *testing.T, put bool, body string) {
		before, n := h.progs(9), len(h.m.List())
		method, path := http.MethodPost, "/ebpf"
		if put {
			method, path = http.MethodPut, "/ebpf/1"
		}
		rec := httptest.NewRecorder()
		h.router.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		if rec.Code >= 500 || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s %s %q: %d %s", method, path, body, rec.Code, rec.Body)
		}
		if rec.Code != 200 && (h.progs(9) != before || len(h.m.List()) != n) {
			t.Fatalf("a refused %s %q changed the manager", method, body)
		}
		for _, in := range h.m.List() { // back to the one instance
			if in.ID != "1" {
				if err := h.m.Delete(in.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
