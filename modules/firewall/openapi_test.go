package main

import (
	"testing"

	"github.com/oakestra/netmanager/test/openapitest"
)

// The routes New registers are the document's firewall operations under /ebpf/{id}/.
func TestOpenAPICoversRoutes(t *testing.T) {
	w := newFW(t, `{}`)
	openapitest.CheckModule(t, "firewall", w.router)
}

// The answers' schemas fit the Go types the handlers encode.
func TestOpenAPISchemasFitTypes(t *testing.T) {
	doc := openapitest.Load(t)
	openapitest.MatchType(t, doc, "FirewallRule", Rule{})
	openapitest.MatchType(t, doc, "FirewallVerdicts", Verdicts{})
}
