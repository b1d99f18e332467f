package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
)

// foreignName is the name of the test's own program: another agent's.
const foreignName = "nm_test_foreign"

// doctorReport runs netmanagerctl doctor -o json: its exit status and report.
func doctorReport(t *testing.T, n *node) (int, ebpfmanager.Report) {
	t.Helper()
	r := ctl(t, n, "doctor", "-o", "json")
	var rep ebpfmanager.Report
	if err := json.Unmarshal([]byte(r.out), &rep); err != nil {
		t.Fatalf("doctor -o json: exit %d, stderr %q, stdout not a report (%v):\n%s", r.rc, r.errs, err, r.out)
	}
	return r.rc, rep
}

// attachForeign loads a sched_cls program returning TC_ACT_OK and attaches
// it at the head of ifname's TCX ingress in the node's namespace, as
// another agent would; closing the link removes it.
func attachForeign(t *testing.T, n *node, ifname string) (link.Link, uint32) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: foreignName, Type: ebpf.SchedCLS, License: "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}}) // TC_ACT_OK
	if err != nil {
		t.Fatalf("load the foreign program: %v", err)
	}
	defer prog.Close() // the link holds it
	var l link.Link
	err = n.ns.Do(func() error {
		ifc, err := net.InterfaceByName(ifname) // netlink: this thread's namespace
		if err != nil {
			return err
		}
		l, err = link.AttachTCX(link.TCXOptions{Interface: ifc.Index, Program: prog, Attach: ebpf.AttachTCXIngress, Anchor: link.Head()})
		return err
	})
	if err != nil {
		t.Fatalf("attach the foreign program to %s: %v", ifname, err)
	}
	t.Cleanup(func() { _ = l.Close() }) // closing twice is harmless
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return l, uint32(id)
}

// netmanagerctl doctor on a real daemon: healthy with services and modules;
// a foreign TCX program at the head of a service's veth is named (id, name,
// position) with exit 1 and shows in GET /ebpf/{id}; a removed and a stray
// pin are reported; healthy again once the test undoes what it did.
func TestDoctor(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	a, b := newContainer(t), newContainer(t)
	deployContainer(t, n, a, "app.ns.da.ns", 0, "")
	deployContainer(t, n, b, "app.ns.db.ns", 0, "")
	veth := ctlVeth(t, n, "app.ns.da.ns")
	counter := loadModule(t, n, `{"name": "packetcounter", "priority": 10}`)
	loadModule(t, n, `{"name": "firewall", "priority": 20}`)

	rc, rep := doctorReport(t, n)
	if rc != 0 || !rep.Healthy || rep.Summary.Instances != 2 || rep.Summary.Hooks != 4 || rep.Summary.Programs != 8 {
		t.Fatalf("healthy node: exit %d, %+v", rc, rep)
	}
	ctl(t, n, "doctor").ok(t, "healthy: 2 module instances (0 failed), 4 interface hooks checked (tcx), 0 foreign programs")

	// Another agent's program at the head of the veth's ingress.
	l, fid := attachForeign(t, n, veth)
	r := ctl(t, n, "doctor")
	want := fmt.Sprintf("program %d %q (tag ", fid, foreignName)
	if r.rc != 1 || !strings.Contains(r.out, "foreign-program") || !strings.Contains(r.out, want) ||
		!strings.Contains(r.out, ") at position 0 on "+veth+" ingress") || !strings.Contains(r.out, "an accept or drop from it ends the chain") ||
		!strings.Contains(r.errs, "the node is unhealthy") {
		t.Fatalf("doctor with a foreign program: exit %d, stderr %q, stdout\n%s", r.rc, r.errs, r.out)
	}
	_, rep = doctorReport(t, n)
	if rep.Healthy || len(rep.Problems) != 1 || rep.Problems[0].Foreign == nil || rep.Problems[0].Foreign.ID != fid ||
		rep.Problems[0].Foreign.Name != foreignName || rep.Problems[0].Foreign.Position != 0 || !rep.Problems[0].Foreign.EndsChain {
		t.Fatalf("doctor -o json with a foreign program: %+v", rep)
	}
	var inf ebpfmanager.Info
	getJSON(t, n, "/ebpf/"+counter.ID, &inf)
	if len(inf.Foreign) != 1 || inf.Foreign[0].ID != fid || inf.Foreign[0].Name != foreignName || inf.Foreign[0].Interface != veth ||
		inf.Foreign[0].Hook != "ingress" || inf.Foreign[0].Position != 0 || inf.Foreign[0].Tag == "" {
		t.Fatalf("GET /ebpf/%s foreign: %+v", counter.ID, inf.Foreign)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// A map pin removed (the test keeps the map to pin it back), a stray pin.
	mapsDir := filepath.Join(n.d.PinDir, counter.ID, "maps")
	es, err := os.ReadDir(mapsDir)
	if err != nil || len(es) == 0 {
		t.Fatalf("the counter's map pins: %v %v", es, err)
	}
	removed := filepath.Join(mapsDir, es[0].Name())
	m, err := ebpf.LoadPinnedMap(removed, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := os.Remove(removed); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(n.d.PinDir, "doctor-stray")
	sm, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sm.Close()
	if err := sm.Pin(stray); err != nil {
		t.Fatal(err)
	}
	rc, rep = doctorReport(t, n)
	kinds := map[string]string{}
	for _, p := range rep.Problems {
		kinds[p.Kind] = p.Subject
	}
	if rc != 1 || rep.Healthy || len(rep.Problems) != 2 || kinds[ebpfmanager.ProblemMissingPin] != removed || kinds[ebpfmanager.ProblemStrayPin] != stray {
		t.Fatalf("doctor with a removed and a stray pin: exit %d, %+v", rc, rep.Problems)
	}

	// Undone: healthy again.
	if err := sm.Unpin(); err != nil {
		t.Fatal(err)
	}
	// m remembers the path it was loaded from and would not pin there
	// again: a fresh handle on the same map does.
	mi, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	mid, _ := mi.ID()
	again, err := ebpf.NewMapFromID(mid)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := again.Pin(removed); err != nil {
		t.Fatal(err)
	}
	if rc, rep = doctorReport(t, n); rc != 0 || !rep.Healthy || len(rep.Problems) != 0 {
		t.Fatalf("doctor after cleanup: exit %d, %+v", rc, rep.Problems)
	}
	ctl(t, n, "modules", "delete", "--all").ok(t)
	n.stop(t)
}
