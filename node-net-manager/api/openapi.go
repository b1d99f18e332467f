package api

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3 document of every route the daemon serves: the
// node API, the daemon's own routes (/proxy, /metrics), the eBPF Manager's
// /ebpf routes and the shipped modules' routes under /ebpf/{id}/.
// docs/api.md is the readable reference; the tests keep the two routers and
// this document in step (openapi_test.go here, in ebpfManager and in each module).
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the API's OpenAPI 3 document (JSON), as GET /openapi.json serves it.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPI)
}
