package deploy

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/config"
	"github.com/oakestra/netmanager/node-net-manager/events"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

// A restart with persist takes back the saved services whose veths survived
// (same addresses and service IPs, announced again) and cleans the rest.
func TestReadopt(t *testing.T) {
	state := filepath.Join(t.TempDir(), "services.json")
	h := newHarness(t)
	h.m.opts.StatePath = state
	ctx := context.Background()
	a, err := h.m.Deploy(ctx, Request{Kind: KindContainer, PID: 100, ServiceName: "app.ns.web.ns", PortMappings: "8080:80"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := h.m.Deploy(ctx, container("app.ns.web.ns", 1, 101))
	c, _ := h.m.Deploy(ctx, container("app.ns.db.ns", 0, 102))
	// The daemon stops without undeploying (persist); meanwhile c's container exits.
	delete(h.net.links, c.HostVeth)

	n, _ := config.Default().Validate()
	tab, _ := table.NewStandalone(table.Options{Range: n.ServiceRange})
	bus := &events.Bus{}
	var announced []string
	bus.Subscribe("rec", func(_ context.Context, ev events.Event) error {
		announced = append(announced, ev.Service.HostVeth)
		return nil
	})
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	m2, err := New(Options{Net: n, Env: h.net, Table: tab, Bus: bus, Log: log, StatePath: state})
	if err != nil {
		t.Fatal(err)
	}
	got, err := m2.Readopt(ctx)
	if err != nil || got != 2 {
		t.Fatalf("re-adopted %d, %v; want 2", got, err)
	}
	recs := m2.List()
	if len(recs) != 2 || recs[0].NsAddress != a.NsAddress || recs[1].NsAddress != b.NsAddress || recs[0].ServiceIPs[0] != a.ServiceIPs[0] {
		t.Fatalf("re-adopted records %+v", recs)
	}
	if len(announced) != 2 {
		t.Fatalf("ServiceCreated for re-adopted services: %v", announced)
	}
	// New deploys get fresh addresses, not the re-adopted ones.
	d, err := m2.Deploy(ctx, container("app.ns.new.ns", 0, 103))
	if err != nil || d.NsAddress == a.NsAddress || d.NsAddress == b.NsAddress {
		t.Fatalf("new deploy %+v %v", d, err)
	}
	// And the state file now lists what is deployed.
	m3, _ := New(Options{Net: n, Env: newFakeNet(), Table: tab, Bus: &events.Bus{}, Log: log, StatePath: state})
	if got, _ := m3.Readopt(ctx); got != 0 {
		t.Fatalf("a node without the veths re-adopted %d", got)
	}
}

// Without persist, a start removes what the saved services of an earlier run
// left: veths and the namespaces made for unikernels.
func TestCleanupSaved(t *testing.T) {
	state := filepath.Join(t.TempDir(), "services.json")
	h := newHarness(t)
	h.m.opts.StatePath = state
	ctx := context.Background()
	if _, err := h.m.Deploy(ctx, Request{Kind: KindUnikernel, ServiceName: "app.ns.uk.ns", Instance: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Deploy(ctx, container("app.ns.web.ns", 0, 100)); err != nil {
		t.Fatal(err)
	}
	// The daemon crashes; the next one starts without persist.
	n, _ := config.Default().Validate()
	tab, _ := table.NewStandalone(table.Options{Range: n.ServiceRange})
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	m2, _ := New(Options{Net: n, Env: h.net, Table: tab, Bus: &events.Bus{}, Log: log, StatePath: state})
	if got, err := m2.CleanupSaved(); err != nil || got != 2 {
		t.Fatalf("cleaned %d, %v", got, err)
	}
	if l := h.net.leftovers(); len(l) != 0 {
		t.Fatalf("left: %v", l)
	}
	if got, _ := m2.CleanupSaved(); got != 0 {
		t.Fatalf("a second cleanup found %d", got)
	}
}
