package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// A firewall re-created over its earlier maps with its saved state (a
// restart with persist) takes over the running rule set: the rules changed
// through its routes, their ids and hits, and the generation the kernel
// runs — it writes no rule and flips nothing, so no packet meets anything
// but the old rules. Its next change installs as usual.
func TestRestoreTakesOverTheRunningRules(t *testing.T) {
	var saved json.RawMessage
	w := newFWWith(t, `{"defaultPolicy": "deny", "rules": [{"action": "allow", "proto": "icmp"}]}`, func(b *module.Base) {
		b.SaveState = func(s json.RawMessage) error { saved = s; return nil }
	})
	w.put(t, `[{"id": "web", "action": "allow", "proto": "tcp", "dstPorts": "80"}, {"action": "allow", "proto": "udp"}]`)
	for i := 0; i < 3; i++ {
		if v := w.toService(t, tcp4(t, "10.0.0.1", "10.0.0.2", 40000, 80)); verdict(v) != verdict(next) {
			t.Fatalf("allowed TCP: %s", verdict(v))
		}
	}
	_, before := w.do(t, "GET", "/rules", "")
	var stBefore fwState
	if err := w.coll.Maps["state"].Lookup(uint32(0), &stBefore); err != nil {
		t.Fatal(err)
	}
	if saved == nil {
		t.Fatal("no state saved")
	}

	// The next run: the same maps, the saved state, Readopted.
	router := mux.NewRouter()
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	var saves int
	mod, err := New(module.Base{ID: "1", Name: "firewall", Config: json.RawMessage(`{"defaultPolicy": "deny", "rules": [{"action": "allow", "proto": "icmp"}]}`),
		Router: router, Log: log, DataPlane: &module.DataPlane{Maps: w.coll.Maps, Programs: w.coll.Programs},
		Readopted: true, State: saved, SaveState: func(json.RawMessage) error { saves++; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	w2 := &fw{coll: w.coll, f: mod.(*Firewall), router: router}
	var stAfter fwState
	if err := w.coll.Maps["state"].Lookup(uint32(0), &stAfter); err != nil {
		t.Fatal(err)
	}
	if stAfter != stBefore {
		t.Fatalf("taking over changed the running state: %+v, was %+v", stAfter, stBefore)
	}
	if _, after := w2.do(t, "GET", "/rules", ""); after != before {
		t.Fatalf("rules after the restart:\n%s\nwant\n%s", after, before)
	}
	if !strings.Contains(before, `"hits":3`) {
		t.Fatalf("hits before: %s", before)
	}
	if v := w2.toService(t, echo4(t, "10.0.0.1", "10.0.0.2", 8, 1)); verdict(v) != verdict(drop) {
		t.Fatalf("ICMP, allowed only by the config's replaced rule set: %s", verdict(v))
	}
	// The next change goes to the other generation and is saved.
	w2.put(t, `[{"action": "allow", "proto": "icmp"}]`)
	if v := w2.toService(t, echo4(t, "10.0.0.1", "10.0.0.2", 8, 1)); verdict(v) != verdict(next) || saves == 0 {
		t.Fatalf("after a change: %s, %d saves", verdict(v), saves)
	}
}
