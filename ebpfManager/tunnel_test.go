package ebpfmanager

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

// fixedSource is a table of fixed entries.
type fixedSource []table.Entry

func (f fixedSource) Entries() []table.Entry { return f }
func (f fixedSource) Lookup(context.Context, table.Query) ([]table.Entry, error) {
	return f, nil
}

// remoteOf is each entry's Remote flag by service name, as a module reads it.
func remoteOf(st module.ServiceTable) map[string]bool {
	out := map[string]bool{}
	for _, e := range st.Entries() {
		out[e.Name] = e.Remote
	}
	return out
}

// The node's address moves: an instance on a host interface is made anew
// in place, its Base carrying the new tunnel end; one on services only is
// told the table changed; the table every instance holds (made before or
// after) tells this node's entries by the new address, and by the old one
// they may still carry.
func TestSetTunnel(t *testing.T) {
	h := newHarness(t, ModeTCX)
	moved := netip.MustParseAddrPort("192.168.77.12:50103")
	src := fixedSource{
		{ServiceName: "old", NsIP: netip.MustParseAddr("10.18.0.2"), NodeIP: testTunnel.Addr()},
		{ServiceName: "new", NsIP: netip.MustParseAddr("10.18.0.3"), NodeIP: moved.Addr()},
		{ServiceName: "other", NsIP: netip.MustParseAddr("10.19.0.2"), NodeIP: netip.MustParseAddr("192.168.77.3")},
	}
	h.m.opts.Table = &liveTable{t: ServiceTable{Source: src, Self: testTunnel}}
	if err := h.deploy(t, svc("a.b.c.d", 2)); err != nil {
		t.Fatal(err)
	}
	svcs := h.load(t, "counter", 10)
	host, err := h.m.Load(LoadRequest{Name: "dropper", Interfaces: []string{"eth9"}})
	if err != nil {
		t.Fatal(err)
	}
	before := h.p.mods["dropper"][0].base.Services
	if got := remoteOf(before); got["old"] || !got["new"] || !got["other"] {
		t.Fatalf("before the move, remote: %v", got)
	}
	if err := h.m.SetTunnel(moved); err != nil {
		t.Fatal(err)
	}
	mods := h.p.mods["dropper"]
	if len(mods) != 2 || mods[1].base.Tunnel != moved || !mods[1].base.Readopted {
		t.Fatalf("the host interface's instance was not made anew with tunnel %v: %d control planes", moved, len(mods))
	}
	if calls := strings.Join(mods[0].calls, ","); !strings.HasSuffix(calls, "Close") {
		t.Fatalf("the old control plane: %s", calls)
	}
	h.assertChain(t, 9, host.ID)
	h.assertChain(t, 2, svcs.ID)
	if calls := h.p.mods["counter"][0].calls; len(h.p.mods["counter"]) != 1 || calls[len(calls)-1] != "ServicesChanged" {
		t.Fatalf("the services' instance: %d control planes, calls %v", len(h.p.mods["counter"]), calls)
	}
	for _, st := range []module.ServiceTable{before, mods[1].base.Services} {
		if got := remoteOf(st); got["old"] || got["new"] || !got["other"] {
			t.Fatalf("after the move, remote: %v", got)
		}
	}
	if err := h.m.SetTunnel(moved); err != nil || len(h.p.mods["dropper"]) != 2 {
		t.Fatalf("the same address again: %v, %d control planes", err, len(h.p.mods["dropper"]))
	}
	// One that cannot be made anew runs on as it was.
	h.p.newErr["dropper"] = errors.New("refused")
	if err := h.m.SetTunnel(testTunnel); err == nil || !strings.Contains(err.Error(), host.ID) {
		t.Fatalf("a refused New: %v", err)
	}
	h.assertChain(t, 9, host.ID)
}
