package main

import (
	"testing"

	"github.com/oakestra/netmanager/test/openapitest"
)

// The routes New registers are the document's proxy operations under /ebpf/{id}/.
func TestOpenAPICoversRoutes(t *testing.T) {
	d := newDP(t)
	ops, anyMethod := openapitest.Routes(t, d.px.base.Router, openapitest.ModulePrefix)
	if len(anyMethod) > 0 {
		t.Errorf("routes without methods: %v", anyMethod)
	}
	openapitest.Compare(t, "proxy", ops, openapitest.Documented(openapitest.Load(t), openapitest.ByModule, "proxy"))
}

// The answers' schemas fit the Go types the handlers encode.
func TestOpenAPISchemasFitTypes(t *testing.T) {
	doc := openapitest.Load(t)
	openapitest.MatchType(t, doc, "ProxyFlow", Flow{})
	openapitest.MatchType(t, doc, "ProxyPeer", PeerStats{})
}
