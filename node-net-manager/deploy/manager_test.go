package deploy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/config"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/events"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

type harness struct {
	m     *Manager
	net   *fakeNet
	tab   *table.Standalone
	bus   *events.Bus
	evlog []string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	n, err := config.Default().Validate()
	if err != nil {
		t.Fatal(err)
	}
	tab, err := table.NewStandalone(table.Options{Range: n.ServiceRange, RangeV6: n.ServiceRangeV6, Node: table.Node{IP: n.NodeIP, Port: n.TunnelPort}})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{net: newFakeNet(), tab: tab, bus: &events.Bus{}}
	for pid := 100; pid < 140; pid++ {
		h.net.addPID(pid)
	}
	h.bus.Subscribe("recorder", func(_ context.Context, ev events.Event) error {
		h.evlog = append(h.evlog, fmt.Sprintf("%s %s/%d %s", ev.Type, ev.Service.ServiceName, ev.Service.Instance, ev.Service.HostVeth))
		h.net.ops = append(h.net.ops, "event "+string(ev.Type))
		return nil
	})
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	h.m, err = New(Options{Net: n, Env: h.net, Table: tab, Bus: h.bus, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func container(name string, inst, pid int) Request {
	return Request{Kind: KindContainer, PID: pid, ServiceName: name, Instance: inst}
}

func (h *harness) assertEmpty(t *testing.T) {
	t.Helper()
	if l := h.net.leftovers(); len(l) != 0 {
		t.Errorf("network leftovers: %v", l)
	}
	if es := h.tab.Entries(); len(es) != 0 {
		t.Errorf("table leftovers: %+v", es)
	}
	if n := h.m.pool.InUse(); n != 0 {
		t.Errorf("%d node addresses still allocated", n)
	}
	if l := h.m.List(); len(l) != 0 {
		t.Errorf("records left: %+v", l)
	}
}

func TestDeployTwoServices(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	a, err := h.m.Deploy(ctx, Request{Kind: KindContainer, PID: 100, ServiceName: "app.ns.web.ns", Instance: 0, PortMappings: "8080:80"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.m.Deploy(ctx, container("app.ns.db.ns", 0, 101))
	if err != nil {
		t.Fatal(err)
	}
	if a.NsAddress.String() != "10.18.0.2" || b.NsAddress.String() != "10.18.0.3" {
		t.Fatalf("addresses %s %s", a.NsAddress, b.NsAddress)
	}
	if a.NsAddressV6.String() != "fd00:18::2" || b.NsAddressV6.String() != "fd00:18::3" {
		t.Fatalf("IPv6 addresses %s %s", a.NsAddressV6, b.NsAddressV6)
	}
	if a.HostVeth == b.HostVeth || len(a.HostVeth) > 15 || a.Peer != "eth0" || a.HostIfindex == 0 {
		t.Fatalf("interfaces: %+v %+v", a, b)
	}
	if a.Netns != "/proc/100/ns/net" || len(a.PortMappings) != 1 || a.PortMappings[0].HostPort != 8080 {
		t.Fatalf("record: %+v", a)
	}
	if len(a.ServiceIPs) != 4 || !a.ServiceIPs[2].Address.Is6() {
		t.Fatalf("service IPs: %+v", a.ServiceIPs)
	}
	list := h.m.List()
	if len(list) != 2 || list[0].ServiceName != "app.ns.db.ns" {
		t.Fatalf("list not sorted by name: %+v", list)
	}
	if len(h.evlog) != 2 || !strings.HasPrefix(h.evlog[0], "ServiceCreated app.ns.web.ns/0 oak") {
		t.Fatalf("events: %v", h.evlog)
	}
	rr, _ := h.tab.Lookup(ctx, table.Query{IP: a.ServiceIPs[0].Address})
	if len(rr) != 1 || rr[0].NsIP != a.NsAddress {
		t.Fatalf("table lookup by service IP: %+v", rr)
	}
	for _, r := range []Record{a, b} {
		if err := h.m.Undeploy(ctx, KindContainer, r.ServiceName, r.Instance); err != nil {
			t.Fatal(err)
		}
	}
	h.assertEmpty(t)
}

func TestRemovedEventPrecedesDetach(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.m.Deploy(ctx, container("app.ns.web.ns", 0, 100)); err != nil {
		t.Fatal(err)
	}
	h.net.ops = nil
	if err := h.m.Undeploy(ctx, KindContainer, "app.ns.web.ns", 0); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.net.ops, ","); !strings.HasPrefix(got, "event ServiceRemoved,detach ") {
		t.Fatalf("order: %s", got)
	}
}

func TestBadRequestsLeaveNothing(t *testing.T) {
	cases := []struct {
		name string
		req  Request
		want error
		text string
	}{
		{"empty name", container("", 0, 100), errdefs.ErrInvalid, "serviceName is required"},
		{"three parts", container("a.b.c", 0, 100), errdefs.ErrInvalid, "four dot-separated"},
		{"five parts", container("a.b.c.d.e", 0, 100), errdefs.ErrInvalid, "four dot-separated"},
		{"empty part", container("a..c.d", 0, 100), errdefs.ErrInvalid, "part \"\""},
		{"slash in part", container("a.b/x.c.d", 0, 100), errdefs.ErrInvalid, "part"},
		{"negative instance", container("a.b.c.d", -1, 100), errdefs.ErrInvalid, "instanceNumber"},
		{"no pid", container("a.b.c.d", 0, 0), errdefs.ErrInvalid, "pid 0"},
		{"missing pid", container("a.b.c.d", 0, 99999), errdefs.ErrInvalid, "does not exist"},
		{"own namespace", container("a.b.c.d", 0, 1), errdefs.ErrInvalid, "shares"},
		{"unikernel with pid", Request{Kind: KindUnikernel, PID: 5, ServiceName: "a.b.c.d"}, errdefs.ErrInvalid, "pid 0"},
		{"bad ports", Request{Kind: KindContainer, PID: 100, ServiceName: "a.b.c.d", PortMappings: "80:x"}, errdefs.ErrInvalid, "portMappings"},
		{"modules without manager", Request{Kind: KindContainer, PID: 100, ServiceName: "a.b.c.d", EbpfModules: []events.Module{{Name: "firewall"}}}, errdefs.ErrUnprocessable, "no eBPF Manager"},
		{"module without name", Request{Kind: KindContainer, PID: 100, ServiceName: "a.b.c.d", EbpfModules: []events.Module{{}}}, errdefs.ErrInvalid, "ebpfModules[0].name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			_, err := h.m.Deploy(context.Background(), c.req)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("got %v, want %v containing %q", err, c.want, c.text)
			}
			h.assertEmpty(t)
			if len(h.evlog) != 0 {
				t.Fatalf("events published for a refused deploy: %v", h.evlog)
			}
		})
	}
}

func TestConflicts(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.m.Deploy(ctx, Request{Kind: KindContainer, PID: 100, ServiceName: "a.b.c.d", PortMappings: "8080:80"}); err != nil {
		t.Fatal(err)
	}
	_, err := h.m.Deploy(ctx, container("a.b.c.d", 0, 101))
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "already deployed") {
		t.Fatalf("second deploy: %v", err)
	}
	_, err = h.m.Deploy(ctx, Request{Kind: KindContainer, PID: 101, ServiceName: "a.b.e.d", PortMappings: "8080:90"})
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "8080/tcp") {
		t.Fatalf("port clash: %v", err)
	}
	if _, err := h.m.Deploy(ctx, Request{Kind: KindContainer, PID: 101, ServiceName: "a.b.e.d", PortMappings: "8080:90/udp"}); err != nil {
		t.Fatalf("same port, other protocol: %v", err)
	}
	if len(h.m.List()) != 2 || len(h.net.links) != 2 {
		t.Fatalf("state after conflicts: %d records, %d links", len(h.m.List()), len(h.net.links))
	}
	if err := h.m.Undeploy(ctx, KindUnikernel, "a.b.c.d", 0); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("wrong kind: %v", err)
	}
	if err := h.m.Undeploy(ctx, KindContainer, "a.b.c.d", 7); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("unknown instance: %v", err)
	}
	if err := h.m.Undeploy(ctx, KindContainer, "bad", 0); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}
}

func TestFailedAttachRollsBack(t *testing.T) {
	for _, kind := range []Kind{KindContainer, KindUnikernel} {
		t.Run(string(kind), func(t *testing.T) {
			h := newHarness(t)
			h.net.failAttach = true
			req := Request{Kind: kind, ServiceName: "a.b.c.d"}
			if kind == KindContainer {
				req.PID = 100
			}
			if _, err := h.m.Deploy(context.Background(), req); err == nil || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("got %v", err)
			}
			h.assertEmpty(t)
			h.net.failAttach = false
			if _, err := h.m.Deploy(context.Background(), req); err != nil {
				t.Fatalf("retry after rollback: %v", err)
			}
		})
	}
}

func TestRefusingSubscriberRollsBack(t *testing.T) {
	h := newHarness(t)
	h.bus.Subscribe("refuser", func(_ context.Context, ev events.Event) error {
		if ev.Type == events.ServiceCreated {
			return errors.New("module cannot attach")
		}
		return nil
	})
	_, err := h.m.Deploy(context.Background(), container("a.b.c.d", 0, 100))
	if !errors.Is(err, errdefs.ErrUnprocessable) || !strings.Contains(err.Error(), "module cannot attach") {
		t.Fatalf("got %v", err)
	}
	h.assertEmpty(t)
	want := []string{"ServiceCreated a.b.c.d/0 ", "ServiceRemoved a.b.c.d/0 "}
	if len(h.evlog) != 2 || !strings.HasPrefix(h.evlog[0], want[0]) || !strings.HasPrefix(h.evlog[1], want[1]) {
		t.Fatalf("earlier subscriber not told to undo: %v", h.evlog)
	}
}

func TestUnikernelNamespaceLifecycle(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	r, err := h.m.Deploy(ctx, Request{Kind: KindUnikernel, ServiceName: "a.b.c.d", Instance: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Netns != "/run/netns/a.b.c.d.instance.2" || !h.net.namedNetns["a.b.c.d.instance.2"] {
		t.Fatalf("namespace: %+v", r)
	}
	if err := h.m.Undeploy(ctx, KindUnikernel, "a.b.c.d", 2); err != nil {
		t.Fatal(err)
	}
	h.assertEmpty(t)
}

func TestModulesReachSubscribers(t *testing.T) {
	h := newHarness(t)
	h.m.opts.AcceptModules = func(ms []events.Module) error {
		for _, m := range ms {
			if m.Name == "nope" {
				return fmt.Errorf("%w: module %q is not installed", errdefs.ErrNotFound, m.Name)
			}
		}
		return nil
	}
	var got []events.Module
	h.bus.Subscribe("modules", func(_ context.Context, ev events.Event) error {
		got = ev.Service.Modules
		return nil
	})
	req := container("a.b.c.d", 0, 100)
	req.EbpfModules = []events.Module{{Name: "firewall", Config: []byte(`{"defaultPolicy":"deny"}`)}}
	if _, err := h.m.Deploy(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "firewall" || string(got[0].Config) != `{"defaultPolicy":"deny"}` {
		t.Fatalf("modules: %+v", got)
	}
	req = container("a.b.c.e", 0, 101)
	req.EbpfModules = []events.Module{{Name: "nope"}}
	if _, err := h.m.Deploy(context.Background(), req); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("unknown module: %v", err)
	}
}

func TestCloseUndeploysNewestFirstAndRefusesMore(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := h.m.Deploy(ctx, container("a.b.c.d", i, 100+i)); err != nil {
			t.Fatal(err)
		}
	}
	if svcs := h.m.Services(); len(svcs) != 3 || svcs[0].Instance != 0 || svcs[2].Instance != 2 {
		t.Fatalf("Services not in deploy order: %+v", svcs)
	}
	h.evlog = nil
	if err := h.m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(h.evlog) != 3 || !strings.Contains(h.evlog[0], "/2 ") || !strings.Contains(h.evlog[2], "/0 ") {
		t.Fatalf("removal order: %v", h.evlog)
	}
	h.assertEmpty(t)
	if _, err := h.m.Deploy(ctx, container("a.b.c.d", 9, 110)); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("deploy after close: %v", err)
	}
}

func TestConcurrentDeploysGetDistinctAddresses(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := h.m.Deploy(ctx, container("a.b.c.d", i, 100+i))
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	seen := map[netip.Addr]bool{}
	for _, r := range h.m.List() {
		if seen[r.NsAddress] {
			t.Fatalf("address %s handed out twice", r.NsAddress)
		}
		seen[r.NsAddress] = true
	}
	if len(seen) != 30 {
		t.Fatalf("%d records", len(seen))
	}
}

func TestNamesFor(t *testing.T) {
	a := NamesFor("app.ns.web.ns", 0)
	b := NamesFor("app.ns.web.ns", 1)
	if a.HostVeth == b.HostVeth || a != NamesFor("app.ns.web.ns", 0) {
		t.Fatal("names not unique or not stable")
	}
	if len(a.HostVeth) > 15 || len(a.TempPeer) > 15 || a.HostVeth[3:] != a.TempPeer[3:] {
		t.Fatalf("names %+v", a)
	}
}
