package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/events"
	"github.com/oakestra/netmanager/node-net-manager/netenv"
)

func TestDecideRedeploy(t *testing.T) {
	p80 := []netenv.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}
	ctr := &Record{Kind: KindContainer, PID: 100, PortMappings: p80}
	uni := &Record{Kind: KindUnikernel}
	fw := []events.Module{{Name: "firewall", Config: json.RawMessage(`{"a":1}`)}}
	for _, c := range []struct {
		name  string
		rec   *Record
		req   Request
		ports []netenv.PortMapping
		alive bool
		want  redeploy
	}{
		{"not deployed", nil, container("a.b.c.d", 0, 100), nil, false, deployFresh},
		{"same live pid, same ports", ctr, container("a.b.c.d", 0, 100), p80, true, answerSame},
		{"same live pid, other ports", ctr, container("a.b.c.d", 0, 100), nil, true, refuseClash},
		{"same live pid, other modules", ctr, Request{Kind: KindContainer, PID: 100, EbpfModules: fw}, p80, true, refuseClash},
		{"other pid, old one alive", ctr, container("a.b.c.d", 0, 101), p80, true, refuseClash},
		{"other pid, old one gone", ctr, container("a.b.c.d", 0, 101), nil, false, replaceStale},
		{"same pid, gone", ctr, container("a.b.c.d", 0, 100), p80, false, replaceStale},
		{"container over a unikernel", uni, container("a.b.c.d", 0, 100), nil, false, refuseClash},
		{"unikernel over a container", ctr, Request{Kind: KindUnikernel}, p80, false, refuseClash},
		{"unikernel again", uni, Request{Kind: KindUnikernel}, nil, false, answerSame},
		{"unikernel, other ports", uni, Request{Kind: KindUnikernel}, p80, false, refuseClash},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := decideRedeploy(c.rec, c.req, c.ports, c.alive); got != c.want {
				t.Fatalf("got %d, want %d", got, c.want)
			}
		})
	}
}

// The NodeEngine retries a deploy after a failed start without undeploying:
// a deploy over an instance whose container is gone replaces it; the same
// live request again gets the same answer and changes nothing.
func TestRedeploy(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	first, err := h.m.Deploy(ctx, Request{Kind: KindContainer, PID: 100, ServiceName: "a.b.c.d", PortMappings: "8080:80"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.m.Deploy(ctx, Request{Kind: KindContainer, PID: 100, ServiceName: "a.b.c.d", PortMappings: "8080:80"})
	if err != nil || !reflect.DeepEqual(again, first) {
		t.Fatalf("the same deploy again: %v\n%+v\n%+v", err, again, first)
	}
	if n := len(h.evlog); n != 1 {
		t.Fatalf("%d events, want the first deploy's only: %v", n, h.evlog)
	}
	h.net.kill(100)
	h.net.addPID(101)
	second, err := h.m.Deploy(ctx, Request{Kind: KindContainer, PID: 101, ServiceName: "a.b.c.d", PortMappings: "8080:80"})
	if err != nil {
		t.Fatalf("deploy over a dead container: %v", err)
	}
	if second.PID != 101 || second.Netns != "/proc/101/ns/net" || len(h.m.List()) != 1 || len(h.net.links) != 1 {
		t.Fatalf("after the replacement: %+v, %d records, %d links", second, len(h.m.List()), len(h.net.links))
	}
	if _, err := h.m.Deploy(ctx, container("a.b.c.d", 0, 102)); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("a third container while the second lives: %v", err)
	}
	if _, err := h.m.Deploy(ctx, Request{Kind: KindUnikernel, ServiceName: "u.b.c.d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Deploy(ctx, Request{Kind: KindUnikernel, ServiceName: "u.b.c.d"}); err != nil {
		t.Fatalf("the same unikernel deploy again: %v", err)
	}
	if err := h.m.Undeploy(ctx, KindContainer, "a.b.c.d", 0); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Undeploy(ctx, KindUnikernel, "u.b.c.d", 0); err != nil {
		t.Fatal(err)
	}
	h.assertEmpty(t)
}
