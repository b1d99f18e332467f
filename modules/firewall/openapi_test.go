package main

import (
	"testing"

	"github.com/oakestra/netmanager/test/openapitest"
)

// The routes New registers are the document's firewall operations under /ebpf/{id}/.
func TestOpenAPICoversRoutes(t *testing.T) {
	w := newFW(t, `{}`)
	ops, anyMethod := openapitest.Routes(t, w.router, openapitest.ModulePrefix)
	if len(anyMethod) > 0 {
		t.Errorf("routes without methods: %v", anyMethod)
	}
	openapitest.Compare(t, "firewall", ops, openapitest.Documented(openapitest.Load(t), openapitest.ByModule, "firewall"))
}

// The answers' schemas fit the Go types the handlers encode.
func TestOpenAPISchemasFitTypes(t *testing.T) {
	doc := openapitest.Load(t)
	openapitest.MatchType(t, doc, "FirewallRule", Rule{})
	openapitest.MatchType(t, doc, "FirewallVerdicts", Verdicts{})
}
