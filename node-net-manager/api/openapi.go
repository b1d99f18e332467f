package api

import (
	"net/http"

	"github.com/oakestra/netmanager/node-net-manager/api/openapidoc"
)

// openAPI is the OpenAPI 3 document of every route the daemon serves
// (node-net-manager/api/openapidoc holds it).
var openAPI = openapidoc.JSON()

// OpenAPI returns the API's OpenAPI 3 document (JSON), as GET /openapi.json serves it.
func OpenAPI() []byte { return openapidoc.JSON() }

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPI)
}
