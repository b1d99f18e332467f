package proxy

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/node-net-manager/table"
)

// asking is a resolver that must ask elsewhere about some addresses, as
// the cluster's table must about what it has not cached: MustAsk says so,
// and Lookup of one waits for the test's answer (nil: it is known now).
type asking struct {
	Resolver
	mu      sync.Mutex
	unknown map[netip.Addr]bool
	asked   chan netip.Addr
	answer  chan error
}

func newAsking(r Resolver, unknown ...string) *asking {
	a := &asking{Resolver: r, unknown: map[netip.Addr]bool{}, asked: make(chan netip.Addr, 8), answer: make(chan error)}
	for _, u := range unknown {
		a.unknown[netip.MustParseAddr(u)] = true
	}
	return a
}

func (a *asking) MustAsk(ip netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.unknown[ip]
}

func (a *asking) Lookup(ctx context.Context, q table.Query) ([]table.Entry, error) {
	if a.MustAsk(q.IP) {
		a.asked <- q.IP
		select {
		case err := <-a.answer:
			if err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Second): // the test failed without answering
			return nil, errors.New("no answer from the test")
		}
		a.mu.Lock()
		delete(a.unknown, q.IP)
		a.mu.Unlock()
	}
	return a.Resolver.Lookup(ctx, q)
}

// nothingFor fails the test if the TUN puts anything out within d.
func (f *fakeTun) nothingFor(t *testing.T, d time.Duration, what string) {
	t.Helper()
	select {
	case p := <-f.out:
		t.Fatalf("%s: the proxy put out % x", what, p[:min(len(p), 40)])
	case <-time.After(d):
	}
}

// A new flow to a service address the resolver must ask about waits for the
// answer, asked once however many packets come, while other flows go on;
// then its first packet is delivered, not lost.
func TestHeldUntilTheClusterAnswers(t *testing.T) {
	var ask *asking
	c, ta, tb := runPair(t, func(m merged) (Resolver, Resolver) {
		ask = newAsking(m, "10.30.128.1") // web's round-robin IP on A
		return ask, m
	})
	rr, inst1 := sip(c.web[0], table.PolicyRoundRobin), sip(c.web[1], table.PolicyInstance)
	if rr != "10.30.128.1" {
		t.Fatalf("web's round-robin IP is %s", rr)
	}
	ta.in <- tcp(t, "10.18.0.2", rr, 40000, 80)
	if got := <-ask.asked; got.String() != rr {
		t.Fatalf("asked about %s", got)
	}
	ta.in <- tcp(t, "10.18.0.2", rr, 40000, 80) // a retransmission waits too, without a second question
	ta.in <- tcp(t, "10.18.0.2", inst1, 40001, 80)
	other, _ := decoded(t, tb.next(t))
	if other.DstIP.String() != "10.19.0.3" {
		t.Fatalf("a flow to a known address, while the cluster is asked: to %s", other.DstIP)
	}
	tb.nothingFor(t, 100*time.Millisecond, "before the answer")
	ask.answer <- nil
	for i := 0; i < 2; i++ {
		got, _ := decoded(t, tb.next(t))
		if got.SrcIP.String() != sip(c.client, table.PolicyInstance) || got.DstIP.String() != "10.19.0.2" {
			t.Fatalf("held packet %d reached B as %s -> %s", i, got.SrcIP, got.DstIP)
		}
	}
	select {
	case ip := <-ask.asked:
		t.Fatalf("asked again about %s", ip)
	default:
	}
	if s := c.a.Stats(); s.Held != 2 || s.NewSessions != 2 || len(s.Dropped) != 0 {
		t.Fatalf("A's stats: %+v", s)
	}
}

// When the resolver cannot answer (the cluster's query timed out), the
// sender gets an ICMP unreachable for the packets that waited.
func TestHeldWithoutAnAnswer(t *testing.T) {
	var ask *asking
	c, ta, _ := runPair(t, func(m merged) (Resolver, Resolver) {
		ask = newAsking(m, "10.30.128.1")
		return ask, m
	})
	ta.in <- tcp(t, "10.18.0.2", "10.30.128.1", 40000, 80)
	<-ask.asked
	ask.answer <- errors.New("cluster: table query timed out")
	ip, pkt := decoded(t, ta.next(t))
	icmp, _ := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip.DstIP.String() != "10.18.0.2" || icmp == nil || icmp.TypeCode != layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeHost) {
		t.Fatalf("answer to the sender: %s -> %s %v", ip.SrcIP, ip.DstIP, icmp)
	}
	if s := c.a.Stats(); s.Dropped[DropNoAnswer] != 1 || s.NewSessions != 0 {
		t.Fatalf("A's stats: %+v", s)
	}
}

// A packet from the tunnel whose sender the resolver must ask about waits
// too, and is delivered once the sender is known.
func TestHeldFromTheTunnel(t *testing.T) {
	var ask *asking
	c, ta, tb := runPair(t, func(m merged) (Resolver, Resolver) {
		ask = newAsking(m, "10.30.0.2") // the client's instance IP, on B
		return m, ask
	})
	if got := sip(c.client, table.PolicyInstance); got != "10.30.0.2" {
		t.Fatalf("client instance IP %s", got)
	}
	ta.in <- tcp(t, "10.18.0.2", sip(c.web[0], table.PolicyInstance), 40000, 80)
	<-ask.asked
	tb.nothingFor(t, 100*time.Millisecond, "before the answer")
	ask.answer <- nil
	got, _ := decoded(t, tb.next(t))
	if got.SrcIP.String() != "10.30.0.2" || got.DstIP.String() != "10.19.0.2" {
		t.Fatalf("B's TUN got %s -> %s", got.SrcIP, got.DstIP)
	}
	if s := c.b.Stats(); s.Held != 1 || s.TunnelIn != 1 {
		t.Fatalf("B's stats: %+v", s)
	}
}

// At most maxHeldPerAddr packets wait for one address; more are dropped
// and counted.
func TestHeldBounded(t *testing.T) {
	var ask *asking
	c, ta, tb := runPair(t, func(m merged) (Resolver, Resolver) {
		ask = newAsking(m, "10.30.128.1")
		return ask, m
	})
	for i := 0; i < maxHeldPerAddr+3; i++ {
		ta.in <- tcp(t, "10.18.0.2", "10.30.128.1", 40000, 80)
	}
	<-ask.asked
	waitFor(t, func() bool { return c.a.Stats().Dropped[DropHeldFull] == 3 })
	ask.answer <- nil
	for i := 0; i < maxHeldPerAddr; i++ {
		tb.next(t)
	}
	tb.nothingFor(t, 100*time.Millisecond, "after the held packets")
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("timed out")
}
