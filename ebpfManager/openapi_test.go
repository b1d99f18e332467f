package ebpfmanager

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/oakestra/netmanager/test/openapitest"
)

// Every route Register mounts is documented as the eBPF Manager's and every
// operation documented as its is a route; the one route for any method is
// the module instances' prefix, under which the document has the modules'.
func TestOpenAPICoversManagerRoutes(t *testing.T) {
	doc := openapitest.Load(t)
	h := newHarness(t, ModeTCX)
	ops, anyMethod := openapitest.Routes(t, h.router, "")
	openapitest.Compare(t, "Manager.Register", ops, openapitest.Documented(doc, openapitest.ByEBPF, ""))
	if !slices.Equal(anyMethod, []string{openapitest.ModulePrefix + "/"}) {
		t.Errorf("routes for any method: %v, want only %s/", anyMethod, openapitest.ModulePrefix)
	}
	mods := openapitest.Documented(doc, openapitest.ByModule, "")
	if len(mods) == 0 {
		t.Error("the document has no module routes under " + openapitest.ModulePrefix)
	}
	for op := range mods {
		if !strings.Contains(op, " "+openapitest.ModulePrefix+"/") {
			t.Errorf("module operation %s is not under %s/", op, openapitest.ModulePrefix)
		}
	}
}

// The /ebpf routes' answers, with a fake kernel, conform to the document:
// each request is valid or not as expected, and each answer's status is one
// the operation lists, its body of that status's schema.
func TestOpenAPIManagerAnswers(t *testing.T) {
	c := openapitest.NewChecker(t, openapitest.Load(t))
	h := newHarness(t, ModeTCX)
	cases := []struct {
		method, path, body string
		valid              bool // the request conforms to the document
		status             int
	}{
		{"GET", "/ebpf", "", true, 200},
		{"POST", "/ebpf", `{"name": "counter", "priority": 10, "config": {"a": 1}}`, true, 200},
		{"POST", "/ebpf", `{"name": "dropper", "services": ["*"]}`, true, 200},
		{"POST", "/ebpf", `{"name": "nosuch"}`, true, 404},
		{"POST", "/ebpf", `{"name": "Bad/Name"}`, false, 400},
		{"POST", "/ebpf", `{"priority": 10}`, false, 400},
		{"POST", "/ebpf", `{"name": "counter", "priority": 0}`, false, 400},
		{"POST", "/ebpf", `{"name": `, false, 400},
		{"GET", "/ebpf", "", true, 200},
		{"GET", "/ebpf/1", "", true, 200},
		{"GET", "/ebpf/99", "", true, 404},
		{"PUT", "/ebpf/1", `{"priority": 20}`, true, 200},
		{"PUT", "/ebpf/1", `{"priority": 5000}`, false, 400},
		{"PUT", "/ebpf/1", `{"config": 3}`, false, 400},
		{"PUT", "/ebpf/99", `{}`, true, 404},
		{"GET", "/ebpf/99/counts", "", true, 404},
		{"GET", "/ebpf/1/counts", "", true, 404}, // the fake module has no such route
		{"DELETE", "/ebpf/1", "", true, 200},
		{"DELETE", "/ebpf/1", "", true, 404},
		{"DELETE", "/ebpf", "", true, 200},
	}
	for _, tc := range cases {
		var body []byte
		if tc.body != "" {
			body = []byte(tc.body)
		}
		name := tc.method + " " + tc.path + " " + tc.body
		in, err := c.Request(tc.method, tc.path, body)
		if in == nil {
			t.Fatalf("%s: %v", name, err)
		}
		if (err == nil) != tc.valid {
			t.Errorf("%s: the document says the request conforms: %v, want %v (%v)", name, err == nil, tc.valid, err)
		}
		rec := httptest.NewRecorder()
		h.router.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
		got, _ := io.ReadAll(rec.Body)
		if rec.Code != tc.status {
			t.Errorf("%s: %d %s, want %d", name, rec.Code, got, tc.status)
		}
		if err := c.Response(in, rec.Code, rec.Header(), got); err != nil {
			t.Errorf("%s: the answer %d %s does not conform: %v", name, rec.Code, got, err)
		}
	}
	// A method the document lacks is no operation (the router answers 405).
	if _, err := c.Request(http.MethodPatch, "/ebpf", nil); !errors.Is(err, openapitest.ErrNoOperation) {
		t.Errorf("PATCH /ebpf: %v, want no operation", err)
	}
}

// The answers' schemas fit the Go types the handlers encode.
func TestOpenAPISchemasFitTypes(t *testing.T) {
	doc := openapitest.Load(t)
	openapitest.MatchType(t, doc, "ModuleInstance", Info{})
	openapitest.MatchType(t, doc, "Attachment", AttachmentInfo{})
}
