package main

import (
	"testing"

	"github.com/oakestra/netmanager/test/openapitest"
)

// The routes New registers are the document's sdwan operations under /ebpf/{id}/.
func TestOpenAPICoversRoutes(t *testing.T) {
	w := newGW(t, `[]`, `[]`, "")
	openapitest.CheckModule(t, "sdwan", w.router)
}

// The answers' schemas fit the Go types the handlers encode.
func TestOpenAPISchemasFitTypes(t *testing.T) {
	doc := openapitest.Load(t)
	openapitest.MatchType(t, doc, "SDWANRule", Rule{})
	openapitest.MatchType(t, doc, "SDWANLBR", LBRInfo{})
	openapitest.MatchType(t, doc, "SDWANWAN", WANInfo{})
}
