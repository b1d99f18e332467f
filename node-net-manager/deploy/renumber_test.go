package deploy

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

func TestRenumber(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	next, err := h.m.Subnet().Adopt("10.18.7.64", "fd00:18:7::100")
	if err != nil {
		t.Fatal(err)
	}

	h.net.failRenumber = true
	if err := h.m.Renumber(next); err == nil {
		t.Fatal("a failed renumber succeeded")
	}
	if got := h.m.Subnet().NodeSubnet.String(); got != "10.18.0.0/24" {
		t.Fatalf("a failed renumber moved the manager to %s", got)
	}
	h.net.failRenumber = false

	if err := h.m.Renumber(next); err != nil {
		t.Fatal(err)
	}
	if h.net.subnet != next.NodeSubnet || h.m.Subnet().NodeSubnet != next.NodeSubnet {
		t.Fatalf("node moved to %s, manager to %s; want %s", h.net.subnet, h.m.Subnet().NodeSubnet, next.NodeSubnet)
	}
	rec, err := h.m.Deploy(ctx, container("app.ns.web.ns", 0, 100))
	if err != nil {
		t.Fatal(err)
	}
	if rec.NsAddress != netip.MustParseAddr("10.18.7.66") || rec.NsAddressV6 != netip.MustParseAddr("fd00:18:7::102") {
		t.Fatalf("deployed at %s %s, want the first addresses after the new gateways", rec.NsAddress, rec.NsAddressV6)
	}

	// With an instance deployed the node stays where it is.
	back, _ := h.m.Subnet().Adopt("10.18.8.0", "fd00:18:8::")
	if err := h.m.Renumber(back); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("renumber with an instance: %v, want ErrConflict", err)
	}
	if h.net.subnet != next.NodeSubnet || h.m.Subnet().NodeSubnet != next.NodeSubnet {
		t.Fatal("a refused renumber moved the node")
	}
	// The same subnet again is no change, even with instances.
	if err := h.m.Renumber(next); err != nil {
		t.Fatalf("renumber to the current subnet: %v", err)
	}
	if err := h.m.Undeploy(ctx, KindContainer, "app.ns.web.ns", 0); err != nil {
		t.Fatal(err)
	}
	h.assertEmpty(t)
}
