package ebpfmanager

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"slices"
	"sync"
	"testing"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/events"
)

// 100 clients load, update, delete, deploy and undeploy at once (run it
// with -race); afterwards the kernel holds exactly what the manager and
// the declared state say: every running instance once on every service
// veth, in chain order, and nothing of what was deleted.
func TestConcurrentClients(t *testing.T) {
	store := &memStore{}
	h := newHarness(t, ModeTCX)
	h.m.opts.Store = store
	var svcMu sync.Mutex
	h.m.opts.Services = func() []events.Service {
		svcMu.Lock()
		defer svcMu.Unlock()
		return slices.Clone(h.services)
	}
	names := []string{"counter", "dropper", "other"}
	var wg sync.WaitGroup
	for c := 0; c < 100; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(c)))
			for op := 0; op < 5; op++ {
				switch r.Intn(5) {
				case 0, 1:
					_, _ = h.m.Load(LoadRequest{Name: names[r.Intn(3)], Priority: prio(1 + r.Intn(50))})
				case 2:
					if list := h.m.List(); len(list) > 0 {
						_, _ = h.m.Update(list[r.Intn(len(list))].ID, UpdateRequest{Config: json.RawMessage(fmt.Sprintf(`{"c":%d}`, c))})
					}
				case 3:
					if list := h.m.List(); len(list) > 0 {
						_ = h.m.Delete(list[r.Intn(len(list))].ID)
					}
				case 4:
					s := svc(fmt.Sprintf("app.ns.s%d.ns", c), 100+c)
					if err := h.m.HandleEvent(context.Background(), events.Event{Type: events.ServiceCreated, Service: s}); err == nil {
						svcMu.Lock()
						h.services = append(h.services, s)
						svcMu.Unlock()
					}
					if r.Intn(2) == 0 {
						_ = h.m.HandleEvent(context.Background(), events.Event{Type: events.ServiceRemoved, Service: s})
						svcMu.Lock()
						h.services = slices.DeleteFunc(h.services, func(x events.Service) bool { return x.HostVeth == s.HostVeth })
						svcMu.Unlock()
					}
				}
			}
		}(c)
	}
	wg.Wait()
	list := h.m.List()
	var ids []string
	for _, in := range list {
		ids = append(ids, in.ID)
	}
	for _, s := range h.services {
		h.assertChain(t, s.HostIfindex, ids...)
	}
	store.mu.Lock()
	var declared []string
	for _, d := range store.saved {
		declared = append(declared, d.ID)
	}
	store.mu.Unlock()
	if !slices.Equal(declared, ids) {
		t.Fatalf("declared %v, running %v", declared, ids)
	}
	pins, _ := h.k.Pins(h.pins)
	slices.Sort(ids)
	if !slices.Equal(pins, ids) {
		t.Fatalf("pinned %v, running %v", pins, ids)
	}
	for _, hook := range module.Hooks {
		for ifindex := 100; ifindex < 200; ifindex++ {
			if !slices.ContainsFunc(h.services, func(s events.Service) bool { return s.HostIfindex == ifindex }) && len(h.k.programs(ifindex, hook)) > 0 {
				t.Fatalf("programs left on the veth of an undeployed service %d: %v", ifindex, h.k.programs(ifindex, hook))
			}
		}
	}
	t.Logf("%d instances, %d services at the end", len(list), len(h.services))
}
