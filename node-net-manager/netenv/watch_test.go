package netenv

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakeOutbound is an outbound address the test moves, counting lookups.
type fakeOutbound struct {
	mu      sync.Mutex
	a       netip.Addr
	lookups int
}

func (f *fakeOutbound) set(a netip.Addr) {
	f.mu.Lock()
	f.a = a
	f.mu.Unlock()
}

func (f *fakeOutbound) lookup() (netip.Addr, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	return f.a, f.a.IsValid()
}

func (f *fakeOutbound) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookups
}

type change struct{ old, cur netip.Addr }

// A burst of events is looked up once, after the debounce; only a new
// address is reported; no default route (no address) reports nothing;
// the way back is reported too.
func TestWatchLoopDebounces(t *testing.T) {
	old, nu := netip.MustParseAddr("192.168.77.2"), netip.MustParseAddr("192.168.77.12")
	f := &fakeOutbound{a: old}
	events := make(chan struct{})
	changes := make(chan change, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchLoop(ctx, events, WatchOptions{Current: old, Debounce: 50 * time.Millisecond, Lookup: f.lookup,
			OnChange: func(o, c netip.Addr) { changes <- change{o, c} }})
	}()
	defer func() { cancel(); <-done }()

	// An event without a change: looked up, nothing reported.
	events <- struct{}{}
	waitFor(t, func() bool { return f.count() == 1 })
	expectNone(t, changes)

	// A burst (add, route moved, delete), 10 ms apart: one lookup at its end.
	f.set(netip.Addr{}) // between the route's removal and its return
	events <- struct{}{}
	time.Sleep(10 * time.Millisecond)
	f.set(nu)
	events <- struct{}{}
	time.Sleep(10 * time.Millisecond)
	events <- struct{}{}
	if got := f.count(); got != 1 {
		t.Fatalf("looked up during the burst: %d lookups", got)
	}
	if c := <-changes; c != (change{old, nu}) {
		t.Fatalf("change %v, want %v → %v", c, old, nu)
	}
	if got := f.count(); got != 2 {
		t.Fatalf("%d lookups after one burst, want 2", got)
	}

	// No default route for a while: nothing is reported, the address is kept.
	f.set(netip.Addr{})
	events <- struct{}{}
	waitFor(t, func() bool { return f.count() == 3 })
	expectNone(t, changes)
	f.set(old)
	events <- struct{}{}
	if c := <-changes; c != (change{nu, old}) {
		t.Fatalf("change %v, want %v → %v", c, nu, old)
	}
}

// The loop ends when its events end.
func TestWatchLoopEndsWithEvents(t *testing.T) {
	events := make(chan struct{})
	close(events)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchLoop(context.Background(), events, WatchOptions{Lookup: func() (netip.Addr, bool) { return netip.Addr{}, false }})
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("watchLoop went on after its events ended")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition not met within 1 s")
}

func expectNone(t *testing.T, changes <-chan change) {
	t.Helper()
	select {
	case c := <-changes:
		t.Fatalf("unexpected change %v", c)
	case <-time.After(100 * time.Millisecond):
	}
}
