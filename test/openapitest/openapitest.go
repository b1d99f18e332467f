package openapitest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gorilla/mux"

	"github.com/oakestra/netmanager/node-net-manager/api/openapidoc"
)

// Who registers an operation (its x-served-by).
const (
	ByNode   = "node"         // api.NewRouter
	ByCmd    = "cmd"          // the daemon, node-net-manager/cmd/netmanager
	ByEBPF   = "ebpf-manager" // ebpfManager.Manager.Register
	ByModule = "module"       // a module instance's router under /ebpf/{id}/
)

// ModulePrefix is where a module instance's routes are mounted.
const ModulePrefix = "/ebpf/{id}"

// Parse loads and validates a document.
func Parse(data []byte) (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("load the OpenAPI document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is invalid: %w", err)
	}
	return doc, nil
}

// Load is Parse of the embedded document (openapidoc), failing tb on an error.
func Load(tb testing.TB) *openapi3.T {
	tb.Helper()
	doc, err := Parse(openapidoc.JSON())
	if err != nil {
		tb.Fatal(err)
	}
	return doc
}

// Op names an operation: "GET /ebpf/{id}".
func Op(method, path string) string { return strings.ToUpper(method) + " " + path }

// Documented returns the operations whose x-served-by is servedBy; with a
// module name, only those whose x-modules lists it.
func Documented(doc *openapi3.T, servedBy, module string) map[string]bool {
	out := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Extensions["x-served-by"] != servedBy {
				continue
			}
			if module != "" && !slices.Contains(Modules(op), module) {
				continue
			}
			out[Op(method, path)] = true
		}
	}
	return out
}

// Modules is an operation's x-modules.
func Modules(op *openapi3.Operation) []string {
	var out []string
	if list, ok := op.Extensions["x-modules"].([]any); ok {
		for _, v := range list {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// Routes walks r and returns "METHOD prefix+template" for every route with
// methods, and the templates of routes that answer any method (a
// PathPrefix, or a HandleFunc without Methods).
func Routes(tb testing.TB, r *mux.Router, prefix string) (ops map[string]bool, anyMethod []string) {
	tb.Helper()
	ops = map[string]bool{}
	err := r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, err := route.GetMethods()
		if err != nil || len(methods) == 0 {
			anyMethod = append(anyMethod, prefix+tpl)
			return nil
		}
		for _, m := range methods {
			ops[Op(m, prefix+tpl)] = true
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("walk the router: %v", err)
	}
	return ops, anyMethod
}

// Compare fails tb for every served operation the document lacks and every
// documented operation nothing serves.
func Compare(tb testing.TB, what string, served, documented map[string]bool) {
	tb.Helper()
	for _, op := range sorted(served) {
		if !documented[op] {
			tb.Errorf("%s serves %s, which the OpenAPI document lacks (or does not mark as served by it)", what, op)
		}
	}
	for _, op := range sorted(documented) {
		if !served[op] {
			tb.Errorf("the OpenAPI document has %s as served by %s, but %s has no such route", op, what, what)
		}
	}
}

// CheckModule fails tb unless the routes a module registered on r (its
// sub-router, under /ebpf/{id}/) are, method for method, the document's
// operations for that module.
func CheckModule(tb testing.TB, module string, r *mux.Router) {
	tb.Helper()
	ops, anyMethod := Routes(tb, r, ModulePrefix)
	if len(anyMethod) > 0 {
		tb.Errorf("%s: routes without methods: %v", module, anyMethod)
	}
	Compare(tb, module, ops, Documented(Load(tb), ByModule, module))
}

func sorted(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }
