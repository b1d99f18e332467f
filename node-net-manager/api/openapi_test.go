package api_test

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/httpjson"
	"github.com/oakestra/netmanager/node-net-manager/netenv"
	"github.com/oakestra/netmanager/node-net-manager/proxy"
	"github.com/oakestra/netmanager/node-net-manager/table"
	"github.com/oakestra/netmanager/test/openapitest"
)

// nopDeployer is enough for routes that are only walked or read.
type nopDeployer struct{}

func (nopDeployer) Deploy(context.Context, deploy.Request) (deploy.Record, error) {
	return deploy.Record{}, nil
}
func (nopDeployer) Undeploy(context.Context, deploy.Kind, string, int) error { return nil }
func (nopDeployer) List() []deploy.Record                                    { return nil }

func newRouter() http.Handler {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return api.NewRouter(api.Options{Deployer: nopDeployer{}, Version: "test", Log: log})
}

// The document loads and validates, and says who serves every operation;
// every operation answers 200 and 500 (the recoverer) with the Error shape
// for errors; one that reads a body lists 400 and 413; every /ebpf operation
// lists 503 (the daemon's fallback with the eBPF Manager disabled).
func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := openapitest.Load(t)
	known := []string{openapitest.ByNode, openapitest.ByCmd, openapitest.ByEBPF, openapitest.ByModule}
	n := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			n++
			name := openapitest.Op(method, path)
			by, _ := op.Extensions["x-served-by"].(string)
			if !slices.Contains(known, by) {
				t.Errorf("%s: x-served-by %q is not one of %v", name, by, known)
			}
			if (by == openapitest.ByModule) != (len(openapitest.Modules(op)) > 0) {
				t.Errorf("%s: x-modules %v does not fit x-served-by %q", name, openapitest.Modules(op), by)
			}
			if by == openapitest.ByModule && !strings.HasPrefix(path, openapitest.ModulePrefix+"/") {
				t.Errorf("%s: a module's operation outside %s/", name, openapitest.ModulePrefix)
			}
			want := []int{200, 500}
			if op.RequestBody != nil {
				want = append(want, 400, 413)
			}
			if strings.HasPrefix(path, "/ebpf") {
				want = append(want, 503)
			}
			if path != "/healthz" { // the access rules on TCP
				want = append(want, 401, 403)
			}
			for _, code := range want {
				if op.Responses.Status(code) == nil {
					t.Errorf("%s: status %d is not listed", name, code)
				}
			}
			for code, r := range op.Responses.Map() {
				if code == "200" {
					continue
				}
				mt := r.Value.Content.Get("application/json")
				if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Error" {
					t.Errorf("%s: the %s answer is not the Error shape", name, code)
				}
			}
		}
	}
	if n < 28 {
		t.Errorf("only %d operations documented", n)
	}
}

// Every route api.NewRouter registers is documented as the node's, and
// every operation documented as the node's is a route of it.
func TestOpenAPICoversNodeRouter(t *testing.T) {
	doc := openapitest.Load(t)
	r := api.NewRouter(api.Options{Deployer: nopDeployer{}})
	ops, anyMethod := openapitest.Routes(t, r, "")
	if len(anyMethod) > 0 {
		t.Errorf("routes without methods: %v", anyMethod)
	}
	if len(ops) < 9 {
		t.Fatalf("the walk found only %v", ops)
	}
	openapitest.Compare(t, "api.NewRouter", ops, openapitest.Documented(doc, openapitest.ByNode, ""))
}

// GET /openapi.json serves the embedded document, byte for byte.
func TestOpenAPIServed(t *testing.T) {
	rec := httptest.NewRecorder()
	newRouter().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec.Body.String() != string(api.OpenAPI()) {
		t.Fatal("GET /openapi.json is not the embedded document")
	}
	if _, err := openapitest.Parse(rec.Body.Bytes()); err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	newRouter().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/openapi.json", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /openapi.json: %d", rec.Code)
	}
}

// The daemon adds routes of its own in node-net-manager/cmd/netmanager
// (package main, not callable from here): they are read from its source.
// Each must be documented as the daemon's (a route without Methods, at
// least one method of its path; the PathPrefix /ebpf fallback, the /ebpf
// operations), and every operation documented as the daemon's must be there.
func TestOpenAPICoversDaemonRoutes(t *testing.T) {
	doc := openapitest.Load(t)
	ops, anyMethod := cmdRoutes(t, filepath.Join("..", "cmd", "netmanager"))
	documented := openapitest.Documented(doc, openapitest.ByCmd, "")
	paths := map[string]bool{}
	for op := range documented {
		paths[strings.SplitN(op, " ", 2)[1]] = true
	}
	served := map[string]bool{}
	for op := range ops {
		served[op] = true
	}
	for _, tpl := range anyMethod {
		switch {
		case tpl == "/ebpf":
			if len(openapitest.Documented(doc, openapitest.ByEBPF, "")) == 0 {
				t.Error("the daemon's /ebpf fallback stands for /ebpf operations the document lacks")
			}
		case paths[tpl]:
			for op := range documented {
				if strings.HasSuffix(op, " "+tpl) {
					served[op] = true
				}
			}
		default:
			t.Errorf("the daemon serves %s (any method), which the OpenAPI document lacks as the daemon's", tpl)
		}
	}
	openapitest.Compare(t, "the daemon (cmd/netmanager)", served, documented)
}

// cmdRoutes finds X.HandleFunc/Handle/Path/PathPrefix("literal") in the
// package's source, with their .Methods(...) when chained.
func cmdRoutes(t *testing.T, dir string) (ops map[string]bool, anyMethod []string) {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ops = map[string]bool{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		withMethods := map[*ast.CallExpr]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if inner, methods := methodsOf(call); inner != nil {
				if tpl, ok := routePath(inner); ok {
					withMethods[inner] = true
					for _, m := range methods {
						ops[openapitest.Op(m, tpl)] = true
					}
				}
			} else if tpl, ok := routePath(call); ok && !withMethods[call] {
				anyMethod = append(anyMethod, tpl)
			}
			return true
		})
	}
	return ops, anyMethod
}

// methodsOf: for call = X.Methods(m...), X and the methods.
func methodsOf(call *ast.CallExpr) (*ast.CallExpr, []string) {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "Methods" {
		return nil, nil
	}
	inner, ok := sel.X.(*ast.CallExpr)
	if !ok {
		return nil, nil
	}
	var methods []string
	for _, a := range call.Args {
		switch v := a.(type) {
		case *ast.BasicLit:
			s, _ := strconv.Unquote(v.Value)
			methods = append(methods, s)
		case *ast.SelectorExpr: // http.MethodGet
			methods = append(methods, strings.ToUpper(strings.TrimPrefix(v.Sel.Name, "Method")))
		}
	}
	return inner, methods
}

// routePath: for call = X.HandleFunc("/p", ...) (or Handle, Path,
// PathPrefix), the path; a named string constant is resolved too.
func routePath(call *ast.CallExpr) (string, bool) {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || len(call.Args) == 0 || !slices.Contains([]string{"HandleFunc", "Handle", "Path", "PathPrefix"}, sel.Sel.Name) {
		return "", false
	}
	lit, ok := call.Args[0].(*ast.BasicLit)
	if id, isID := call.Args[0].(*ast.Ident); isID && id.Obj != nil {
		if vs, isVS := id.Obj.Decl.(*ast.ValueSpec); isVS && len(vs.Values) == 1 {
			lit, ok = vs.Values[0].(*ast.BasicLit)
		}
	}
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil && strings.HasPrefix(s, "/")
}

// The answers' schemas fit the Go types the handlers encode.
func TestOpenAPISchemasFitTypes(t *testing.T) {
	doc := openapitest.Load(t)
	for name, v := range map[string]any{
		"Registration": api.Registration{}, "DeployResponse": api.DeployResponse{}, "ServiceRecord": deploy.Record{},
		"PortMapping": netenv.PortMapping{}, "ServiceIP": table.ServiceIP{}, "UserspaceProxyStats": proxy.Stats{},
		"Error": httpjson.ErrorBody{}, "Version": api.VersionInfo{}, "KernelFeatures": api.KernelInfo{},
	} {
		openapitest.MatchType(t, doc, name, v)
	}
}

// GET /version conforms to the document with the kernel's features and
// without them, and reports what it was given.
func TestOpenAPIVersion(t *testing.T) {
	c := openapitest.NewChecker(t, openapitest.Load(t))
	log := logrus.New()
	log.SetOutput(io.Discard)
	kernel := &api.KernelInfo{Release: "6.18.44-test", Features: map[string]bool{"tcx": true, "bpf_loop": false}, Masked: []string{"bpf_loop"},
		Inconclusive: map[string]string{"btf": "cannot tell"}}
	for _, k := range []*api.KernelInfo{kernel, nil} {
		r := api.NewRouter(api.Options{Deployer: nopDeployer{}, Version: "test", Kernel: k, Log: log})
		in, err := c.Request("GET", "/version", nil)
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest("GET", "/version", nil))
		body, _ := io.ReadAll(rec.Body)
		if err := c.Response(in, rec.Code, rec.Header(), body); err != nil {
			t.Errorf("GET /version %d %s does not conform: %v", rec.Code, body, err)
		}
		var got api.VersionInfo
		if err := json.Unmarshal(body, &got); err != nil || got.Version != "test" || got.Go != runtime.Version() {
			t.Fatalf("GET /version: %s %v", body, err)
		}
		if (got.Kernel == nil) != (k == nil) {
			t.Fatalf("GET /version with kernel %v: %s", k, body)
		}
		if k != nil && (got.Kernel.Release != "6.18.44-test" || !got.Kernel.Features["tcx"] || got.Kernel.Features["bpf_loop"] ||
			!slices.Equal(got.Kernel.Masked, []string{"bpf_loop"}) || got.Kernel.Inconclusive["btf"] != "cannot tell") {
			t.Errorf("GET /version: %s", body)
		}
	}
}
