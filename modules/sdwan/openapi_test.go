package main

import (
	"testing"

	"github.com/oakestra/netmanager/test/openapitest"
)

// The routes New registers are the document's sdwan operations under /ebpf/{id}/.
func TestOpenAPICoversRoutes(t *testing.T) {
	w := newGW(t, `[]`, `[]`, "")
	ops, anyMethod := openapitest.Routes(t, w.router, openapitest.ModulePrefix)
	if len(anyMethod) > 0 {
		t.Errorf("routes without methods: %v", anyMethod)
	}
	openapitest.Compare(t, "sdwan", ops, openapitest.Documented(openapitest.Load(t), openapitest.ByModule, "sdwan"))
}

// The answers' schemas fit the Go types the handlers encode.
func TestOpenAPISchemasFitTypes(t *testing.T) {
	doc := openapitest.Load(t)
	openapitest.MatchType(t, doc, "SDWANRule", Rule{})
	openapitest.MatchType(t, doc, "SDWANLBR", LBRInfo{})
	openapitest.MatchType(t, doc, "SDWANWAN", WANInfo{})
}
