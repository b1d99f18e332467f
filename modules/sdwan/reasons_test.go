package main

import (
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
)

// The Go table of drop reasons is sdwan.h's SD_REASON_* codes, each named.
func TestDropReasonsMatchC(t *testing.T) {
	header := filepath.Join(bpftest.RepoRoot(t), "modules", "sdwan", "sdwan.h")
	bpftest.CheckDropReasons(t, header, "SD_REASON_", dropReasonMacros, (&SDWAN{}).DropReasons())
}

// dropOf runs nm_ingress on a frame arriving on ifname and returns the
// verdict and the reason and detail nm_drop left (ok false: none).
func (w *gw) dropOf(t *testing.T, ifname string, frame []byte) (v int32, reason, detail uint32, ok bool) {
	t.Helper()
	ctx := bpftest.SkbCtx{Ifindex: uint32(w.ifidx[ifname])}
	v, _, after := bpftest.RunCtx(t, w.ns.Do, w.coll.Programs[module.ProgramIngress], frame, ctx)
	reason, detail, ok = after.Reason()
	return v, reason, detail, ok
}

// Each drop the gateway counts says why: a FAR's drop (the rule's slot),
// no PDR under defaultPolicy drop, too big for the WAN (its index), GRE
// from no peer and malformed GRE (the WAN it came on); each counted in
// nm_drops. Passed and redirected packets carry no reason.
func TestDropReasons(t *testing.T) {
	w := newGW(t, `[{"id": 1, "precedence": 1, "dst": "10.2.5.0/24", "proto": "tcp", "action": "drop"},
	  {"id": 2, "precedence": 2, "dst": "10.2.0.0/16", "action": "redirect", "target": "wan2"}]`, `[]`, `, "defaultPolicy": "drop"`)
	inner := bpftest.Serialize(t, ip4("10.2.0.7", "10.1.0.5", layers.IPProtocolUDP, 0), bpftest.UDP(1, 2))
	bad := greFrame(t, "192.0.2.2", "192.0.2.1", layers.EthernetTypeIPv4, inner)
	bad[35] = 0x01 // GRE version 1
	cases := []struct {
		name, ifname string
		frame        []byte
		reason       uint32
		detail       int // -1: not checked
	}{
		{"far drop", "lan0", lanTCP(t, "10.2.5.1", 1000, 80, 0, 10), reasonFARDrop, ruleSlot(t, w, 1)},
		{"no match", "lan0", lanUDP(t, "10.3.0.1", 1000, 80, 0), reasonDefaultDrop, 0},
		{"too big for wan2", "lan0", lanTCP(t, "10.2.0.7", 1, 2, 0, 1400-24-40+1), reasonMTU, 1},
		{"unknown peer on wan1", "wan1", greFrame(t, "192.0.2.99", "192.0.2.1", layers.EthernetTypeIPv4, inner), reasonUnknownPeer, 0},
		{"malformed on wan1", "wan1", bad, reasonMalformed, 0},
	}
	want := map[uint32]uint64{}
	for _, c := range cases {
		v, reason, detail, ok := w.dropOf(t, c.ifname, c.frame)
		if v != drop || !ok || reason != c.reason || (c.detail >= 0 && detail != uint32(c.detail)) {
			t.Errorf("%s: verdict %s, reason %d detail %d (%v), want drop %d detail %d", c.name, bpftest.Verdict(v), reason, detail, ok, c.reason, c.detail)
		}
		want[c.reason]++
	}
	if v, _, _, ok := w.dropOf(t, "lan0", lanUDP(t, "10.2.0.7", 1, 2, 0)); v == drop || ok {
		t.Errorf("redirected packet: verdict %s, reason set %v", bpftest.Verdict(v), ok)
	}
	if got := bpftest.Drops(t, w.coll); len(got) != len(want) {
		t.Fatalf("nm_drops %v, want %v", got, want)
	} else {
		for k, n := range want {
			if got[k] != n {
				t.Errorf("nm_drops[%d] = %d, want %d", k, got[k], n)
			}
		}
	}
}

// ruleSlot is the slot of the rule with id.
func ruleSlot(t *testing.T, w *gw, id uint32) int {
	t.Helper()
	for s, r := range w.g.tables.slots {
		if r != nil && r.ID == id {
			return s
		}
	}
	t.Fatalf("no slot holds rule %d", id)
	return -1
}
