package main

import (
	"testing"

	"github.com/gorilla/mux"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/openapitest"
)

// The routes New registers are the document's packetcounter operations under /ebpf/{id}/.
func TestOpenAPICoversRoutes(t *testing.T) {
	coll := load(t)
	r := mux.NewRouter()
	if _, err := New(module.Base{ID: "1", Name: "packetcounter", Router: r, DataPlane: &module.DataPlane{Maps: coll.Maps, Programs: coll.Programs}}); err != nil {
		t.Fatal(err)
	}
	openapitest.CheckModule(t, "packetcounter", r)
}

// The answers' schemas fit the Go types the handlers encode.
func TestOpenAPISchemasFitTypes(t *testing.T) {
	doc := openapitest.Load(t)
	openapitest.MatchType(t, doc, "PacketTotals", Totals{})
}
