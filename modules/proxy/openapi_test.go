package main

import (
	"testing"

	"github.com/oakestra/netmanager/test/openapitest"
)

// The routes New registers are the document's proxy operations under /ebpf/{id}/.
func TestOpenAPICoversRoutes(t *testing.T) {
	d := newDP(t)
	openapitest.CheckModule(t, "proxy", d.px.base.Router)
}

// The answers' schemas fit the Go types the handlers encode.
func TestOpenAPISchemasFitTypes(t *testing.T) {
	doc := openapitest.Load(t)
	openapitest.MatchType(t, doc, "ProxyFlow", Flow{})
	openapitest.MatchType(t, doc, "ProxyPeer", PeerStats{})
}
