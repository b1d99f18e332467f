//go:build kernelmatrix

package kernels

import (
	"net/url"
	"testing"
	"time"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
)

// filters: with denied pings and allowed TCP flows (to the service IP and
// straight to srv) running, each filter's trace shows only what it selects,
// and some of it; a trace ends by its count, its duration or the client
// going away, and leaves no tracing program attached.
func (tr *tracer) filters(t *testing.T) {
	type path = ebpfmanager.PacketPath
	for _, c := range []struct {
		name string
		q    url.Values
		end  string // "count" (4), "duration" (4s) or "cancel" (after 4 paths)
		ok   func(p path) bool
	}{
		{"proto=icmp", url.Values{"proto": {"icmp"}}, "count", func(p path) bool { return p.Proto == "icmp" }},
		{"port=8080", url.Values{"port": {"8080"}}, "cancel", func(p path) bool {
			return p.Proto == "tcp" && (p.Sport == 8080 || p.Dport == 8080)
		}},
		{"verdict=drop", url.Values{"verdict": {"drop"}}, "duration", func(p path) bool {
			// The denied pings, and whatever else the firewall denies into
			// srv (an IPv6 router solicitation, say).
			last := p.Hops[len(p.Hops)-1]
			return last.Verdict == "drop" && last.Module == "firewall" && p.Interface == tr.srvVeth
		}},
		{"direction=in", url.Values{"direction": {"in"}}, "count", func(p path) bool { return p.Direction == "in" && p.Hook == "egress" }},
		{"direction=out", url.Values{"direction": {"out"}}, "cancel", func(p path) bool { return p.Direction == "out" && p.Hook == "ingress" }},
		{"service=cli", url.Values{"service": {"app.ns.cli.ns"}}, "count", func(p path) bool {
			return p.Service == "app.ns.cli.ns/0" && p.Interface == tr.cliVeth
		}},
		{"iface=srv", url.Values{"iface": {tr.srvVeth}}, "cancel", func(p path) bool {
			return p.Interface == tr.srvVeth && p.Service == "app.ns.srv.ns/0"
		}},
		{"host=serviceIP", url.Values{"host": {tr.rr}}, "count", func(p path) bool { return p.Src == tr.rr || p.Dst == tr.rr }},
		{"proto=tcp,direction=in,service=srv", url.Values{"proto": {"tcp"}, "direction": {"in"}, "service": {"app.ns.srv.ns"}}, "count", func(p path) bool {
			return p.Proto == "tcp" && p.Interface == tr.srvVeth && p.Hook == "egress" && p.Dst == tr.srvAddr
		}},
	} {
		var paths []path
		switch c.end {
		case "count":
			c.q.Set("count", "4")
		case "duration":
			c.q.Set("duration", "4s")
		}
		start := time.Now()
		run := tr.startTrace(t, "/ebpf/trace", c.q)
		stop := tr.traffic(t, "ping", "rr", "direct")
		switch c.end {
		case "count":
			paths = run.end(t, traceWait)
			if n := len(withHops(paths)); n != 4 {
				t.Fatalf("%s: count=4 ended with %d paths:\n%s", c.name, n, show(paths))
			}
		case "duration":
			paths = run.end(t, traceWait)
			if d := time.Since(start); d < 4*time.Second {
				t.Fatalf("%s: duration=4s ended after %v", c.name, d)
			}
		case "cancel":
			paths = run.waitFor(t, 4, traceWait)
		}
		stop()
		got := withHops(paths)
		if len(got) == 0 {
			t.Fatalf("%s: no path in %v", c.name, time.Since(start))
		}
		partial := 0
		for _, p := range got {
			if !c.ok(p) {
				t.Fatalf("%s: a path it does not select:\n%s", c.name, show([]path{p}))
			}
			if !tr.whole(p) {
				partial++
				t.Logf("PARTIAL: %s: a path without every hop of the chain %v: %s", c.name, tr.chain(p.Interface, p.Hook), show([]path{p}))
			}
		}
		if partial > 0 {
			t.Logf("MATRIX: %s: %d of %d paths lack hops of their chain", c.name, partial, len(got))
		}
		t.Logf("%s (ended by %s after %.1f s): %d paths, e.g. %s", c.name, c.end, time.Since(start).Seconds(), len(got), show(got[:1]))
		tr.assertNoTracing(t, c.name+": after the trace ended by "+c.end)
	}
}

// whole says whether p has the hops of its veth's chain, in order, up to
// the first that did not say next (or all of them).
func (tr *tracer) whole(p ebpfmanager.PacketPath) bool {
	chain := tr.chain(p.Interface, p.Hook)
	if len(p.Hops) > len(chain) {
		return false
	}
	for i, h := range p.Hops {
		if h.Module != chain[i] || h.Verdict != "next" && i != len(p.Hops)-1 {
			return false
		}
	}
	return len(p.Hops) == len(chain) || p.Hops[len(p.Hops)-1].Verdict != "next"
}
