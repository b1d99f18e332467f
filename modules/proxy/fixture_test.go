package main

import (
	"encoding/json"
	"net/netip"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
)

const (
	next     = -1
	shot     = 2
	redirect = 7
)

var (
	gwMAC    = [6]byte{0x02, 0x6e, 10, 18, 0, 1}
	testRng  = netip.MustParsePrefix("10.30.0.0/16")
	testRng6 = netip.MustParsePrefix("fdff:2000::/64")
)

func v6(s string) netip.Addr { return netip.MustParseAddr(s) }

// v6n is fdff:2000::n or fd00:18::n.
func v6n(prefix string, n int) netip.Addr {
	a := netip.MustParseAddr(prefix).As16()
	a[15] = byte(n)
	return netip.AddrFrom16(a)
}

// tableEntries: a client (10.18.0.2 / fd00:18::2, instance IPs 10.30.0.2 /
// fdff:2000::2) and a service "web" with three instances (round robin
// 10.30.0.1 / fdff:2000::1; namespaces 10.18.0.3-5 / fd00:18::3-5; instance
// IPs 10.30.0.10-12 / fdff:2000::10-12, i.e. ::a-::c).
func tableEntries() []module.ServiceEntry {
	es := []module.ServiceEntry{{Name: "app.ns.client.ns", NsIP: v6("10.18.0.2"), NsIPv6: v6("fd00:18::2"), ServiceIPs: []module.ServiceIP{
		{Policy: "round_robin", Address: v6("10.30.0.9")}, {Policy: "instance", Address: v6("10.30.0.2")},
		{Policy: "round_robin", Address: v6("fdff:2000::9")}, {Policy: "instance", Address: v6("fdff:2000::2")},
	}}}
	for i := 0; i < 3; i++ {
		es = append(es, module.ServiceEntry{Name: "app.ns.web.ns", Instance: i,
			NsIP: netip.AddrFrom4([4]byte{10, 18, 0, byte(3 + i)}), NsIPv6: v6n("fd00:18::", 3+i),
			ServiceIPs: []module.ServiceIP{
				{Policy: "round_robin", Address: v6("10.30.0.1")}, {Policy: "instance", Address: netip.AddrFrom4([4]byte{10, 30, 0, byte(10 + i)})},
				{Policy: "round_robin", Address: v6("fdff:2000::1")}, {Policy: "instance", Address: v6n("fdff:2000::", 10+i)},
			}})
	}
	return es
}

func entries() []entry {
	var out []entry
	for _, e := range tableEntries() {
		out = append(out, toEntry(e))
	}
	return out
}

// attachedAll: all four instances on this node, host veths 12-15.
func attachedAll() map[netip.Addr]local {
	m := map[netip.Addr]local{}
	for i := 0; i < 4; i++ {
		m[netip.AddrFrom4([4]byte{10, 18, 0, byte(2 + i)})] = local{ifindex: uint32(12 + i), mac: [6]byte{0x02, 0, 0, 0, 0, byte(2 + i)}, nsIP6: v6n("fd00:18::", 2+i)}
	}
	return m
}

// fakeTable is a service table: a round-robin IP resolves to every instance
// of its service, an instance or namespace IP to its instance.
type fakeTable struct {
	mu      sync.Mutex
	entries []module.ServiceEntry
}

func (f *fakeTable) Entries() []module.ServiceEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]module.ServiceEntry(nil), f.entries...)
}

func (f *fakeTable) Lookup(ip netip.Addr) []module.ServiceEntry {
	var out []module.ServiceEntry
	for _, e := range f.Entries() {
		hit := e.NsIP == ip || e.NsIPv6 == ip
		for _, s := range e.ServiceIPs {
			hit = hit || s.Address == ip
		}
		if hit {
			out = append(out, e)
		}
	}
	return out
}

// dp is a loaded data plane with its control plane: the table above, every
// instance attached, translations pushed.
type dp struct {
	coll  *ebpf.Collection
	px    *Proxy
	table *fakeTable
}

// newDP: the control plane does not read miss events (tests may).
func newDP(t testing.TB) *dp {
	t.Helper()
	bpftest.RequireRoot(t)
	return setupDP(t, bpftest.ModuleObject(t, "modules", "proxy"), false)
}

// newDPWithMisses: the control plane reads and resolves miss events, as New has it.
func newDPWithMisses(t testing.TB) *dp {
	t.Helper()
	bpftest.RequireRoot(t)
	return setupDP(t, bpftest.ModuleObject(t, "modules", "proxy"), true)
}

func setupDP(t testing.TB, object string, misses bool) *dp {
	t.Helper()
	return wireDP(t, bpftest.Load(t, object), []byte("null"), tableEntries(), attachedAll(), misses)
}

// wireDP gives a loaded data plane its control plane (config, a table of
// these entries, these attachments) and pushes the translations.
func wireDP(t testing.TB, coll *ebpf.Collection, config json.RawMessage, entries []module.ServiceEntry, attached map[netip.Addr]local, misses bool) *dp {
	t.Helper()
	table := &fakeTable{entries: entries}
	base := module.Base{ID: "1", Name: "proxy", Config: config, Router: mux.NewRouter(), Log: logrus.New(),
		Services: table, DataPlane: &module.DataPlane{Maps: coll.Maps, Programs: coll.Programs}}
	var px *Proxy
	if misses {
		m, err := New(base)
		if err != nil {
			t.Fatal(err)
		}
		px = m.(*Proxy)
	} else {
		var err error
		if px, err = newProxy(base); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { // before the collection closes (cleanups run last-in first-out)
		if err := px.Close(); err != nil {
			t.Error(err)
		}
	})
	px.mu.Lock()
	defer px.mu.Unlock()
	if err := px.writeConfig(configValue(testRng, testRng6, gwMAC)); err != nil {
		t.Fatal(err)
	}
	px.gwSet = true
	px.attached = attached
	if err := px.sync(); err != nil {
		t.Fatal(err)
	}
	return &dp{coll: coll, px: px, table: table}
}

func (d *dp) run(t testing.TB, frame []byte) (int32, []byte) {
	t.Helper()
	return bpftest.Run(t, d.coll.Programs[module.ProgramIngress], frame)
}

// stat sums a stats counter over the CPUs.
func (d *dp) stat(t testing.TB, idx uint32) uint64 {
	t.Helper()
	var perCPU []uint64
	if err := d.coll.Maps["stats"].Lookup(idx, &perCPU); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n
}
