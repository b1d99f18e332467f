package main

import (
	"maps"
	"path/filepath"
	"testing"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
)

// The Go table of drop reasons is firewall.h's FW_REASON_* codes, each named.
func TestDropReasonsMatchC(t *testing.T) {
	header := filepath.Join(bpftest.RepoRoot(t), "modules", "firewall", "firewall.h")
	bpftest.CheckDropReasons(t, header, "FW_REASON_", dropReasonMacros, (&Firewall{}).DropReasons())
}

// dropOf runs a frame going to the service and returns the verdict and the
// reason and detail nm_drop left (ok false: none).
func (w *fw) dropOf(t *testing.T, frame []byte) (v int32, reason, detail uint32, ok bool) {
	t.Helper()
	v, _, ctx := bpftest.RunCtx(t, nil, w.coll.Programs[module.ProgramEgress], frame, bpftest.SkbCtx{})
	reason, detail, ok = ctx.Reason()
	return v, reason, detail, ok
}

// A deny rule drops with reason "rule" and the rule's slot, which the
// control plane names by the rule's id (also after the set changes once);
// no match under defaultPolicy deny drops with "default deny"; a malformed
// header with "malformed"; each counted in nm_drops. Allowed packets carry
// no reason and count nothing.
func TestDropReasons(t *testing.T) {
	w := newFW(t, `{"defaultPolicy": "deny", "stateful": false, "rules": [
		{"id": "web", "action": "allow", "proto": "tcp", "dstPorts": "80", "priority": 5},
		{"id": "noping", "action": "deny", "proto": "icmp", "priority": 10}]}`)
	ping := echo4(t, "1.1.1.1", "10.18.0.2", 8, 1)
	var slot uint32
	for range 3 {
		v, reason, detail, ok := w.dropOf(t, ping)
		if v != drop || !ok || reason != reasonRule {
			t.Fatalf("ping: verdict %s, reason %d (%v), want drop with reason rule", verdict(v), reason, ok)
		}
		if id, ok := w.f.DropDetail(reason, detail); !ok || id != "noping" {
			t.Fatalf("slot %d names %q (%v), want noping", detail, id, ok)
		}
		slot = detail
	}
	if v, _, _, ok := w.dropOf(t, tcp4(t, "1.1.1.1", "10.18.0.2", 5, 80)); v != next || ok {
		t.Fatalf("allowed TCP 80: verdict %s, reason set %v", verdict(v), ok)
	}
	if v, reason, detail, ok := w.dropOf(t, tcp4(t, "1.1.1.1", "10.18.0.2", 5, 81)); v != drop || !ok || reason != reasonDefaultDeny || detail != 0 {
		t.Fatalf("TCP 81: verdict %s, reason %d detail %d (%v), want default deny", verdict(v), reason, detail, ok)
	}
	bad := tcp4(t, "2.2.2.2", "10.18.0.2", 1, 80)
	bad[14] = 0x44 // IHL 4
	if v, reason, _, ok := w.dropOf(t, bad); v != drop || !ok || reason != reasonMalformed {
		t.Fatalf("malformed: verdict %s, reason %d (%v), want malformed", verdict(v), reason, ok)
	}
	want := map[uint32]uint64{reasonRule: 3, reasonDefaultDeny: 1, reasonMalformed: 1}
	if got := bpftest.Drops(t, w.coll); !maps.Equal(got, want) {
		t.Fatalf("nm_drops %v, want %v", got, want)
	}
	// One change later the slot still names the rule that dropped; the new
	// set's slot names its own.
	w.put(t, `[{"id": "noicmp", "action": "deny", "proto": "icmp"}]`)
	if id, ok := w.f.DropDetail(reasonRule, slot); !ok || id != "noping" {
		t.Fatalf("old slot %d names %q (%v) after a change", slot, id, ok)
	}
	_, _, detail, _ := w.dropOf(t, ping)
	if id, ok := w.f.DropDetail(reasonRule, detail); !ok || id != "noicmp" || detail == slot {
		t.Fatalf("new slot %d names %q (%v)", detail, id, ok)
	}
	if _, ok := w.f.DropDetail(reasonDefaultDeny, 0); ok {
		t.Fatal("default deny has no detail to name")
	}
	if _, ok := w.f.DropDetail(reasonRule, 2*fwMaxRules+5); ok {
		t.Fatal("a slot out of range named a rule")
	}
}
