package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
)

// The Go table of drop reasons is proxy.h's PX_REASON_* codes, each named.
func TestDropReasonsMatchC(t *testing.T) {
	header := filepath.Join(bpftest.RepoRoot(t), "modules", "proxy", "proxy.h")
	bpftest.CheckDropReasons(t, header, "PX_REASON_", dropReasonMacros, (&Proxy{}).DropReasons())
}

// The proxy drops only when a helper fails. Built with a
// bpf_skb_adjust_room that always fails (-EINVAL), a flow to another node's
// instance is dropped with "encap error" and a tunnel datagram from the
// peer with "decap error", each counted in nm_drops and as an "errors"
// event; a local translation carries no reason.
func TestDropReasons(t *testing.T) {
	bpftest.RequireRoot(t)
	src := "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n" +
		"#define bpf_skb_adjust_room(skb, len, mode, flags) (-22L)\n" +
		"#include \"" + filepath.Join(bpftest.RepoRoot(t), "modules", "proxy", "proxy.bpf.c") + "\"\n"
	file := filepath.Join(t.TempDir(), "noroom.c")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	td := newTunDPOn(t, setupDP(t, bpftest.Compile(t, file), false))
	errs := uint32(slices.Index(statNames, "errors"))
	prog := td.coll.Programs[module.ProgramIngress]
	for _, c := range []struct {
		name    string
		frame   []byte
		ifindex int
		reason  uint32
	}{
		{"to a remote instance", tcpFrame(t, "10.18.0.2", "10.30.0.11", 40000, 7000), 0, reasonEncap},
		{"from the peer", datagram(t, peerNode, tcpFrame(t, "10.18.0.4", "10.30.0.2", 7000, 40000)[14:]), td.ul, reasonDecap},
	} {
		before := td.stat(t, errs)
		v, _, ctx := bpftest.RunCtx(t, td.ns.Do, prog, c.frame, bpftest.SkbCtx{Ifindex: uint32(c.ifindex)})
		reason, detail, ok := ctx.Reason()
		if v != shot || !ok || reason != c.reason || detail != 0 {
			t.Errorf("%s: verdict %s, reason %d detail %d (%v), want drop with %d", c.name, bpftest.Verdict(v), reason, detail, ok, c.reason)
		}
		if td.stat(t, errs) != before+1 {
			t.Errorf("%s: not counted as an error", c.name)
		}
	}
	v, _, ctx := bpftest.RunCtx(t, td.ns.Do, prog, tcpFrame(t, "10.18.0.2", "10.30.0.1", 1, 80), bpftest.SkbCtx{})
	if _, _, ok := ctx.Reason(); v != redirect || ok {
		t.Errorf("a local translation: verdict %s, reason set %v", bpftest.Verdict(v), ok)
	}
	if got := bpftest.Drops(t, td.coll); len(got) != 2 || got[reasonEncap] != 1 || got[reasonDecap] != 1 {
		t.Errorf("nm_drops %v, want encap 1, decap 1", got)
	}
}
