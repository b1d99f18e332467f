package netenv

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
)

// WatchOptions configures WatchOutbound.
type WatchOptions struct {
	// Current is the outbound address the caller uses now (invalid: none).
	Current netip.Addr
	// Debounce is how long the addresses and routes must have been quiet
	// before the outbound address is looked up again (0: 300 ms): a DHCP
	// renewal adds an address, moves the default route and deletes the
	// old address in a burst.
	Debounce time.Duration
	// OnChange runs, in the watcher's goroutine, when the outbound address
	// differs from the last one, with both.
	OnChange func(old, cur netip.Addr)
	// Lookup finds the outbound address (nil: OutboundAddr).
	Lookup func() (netip.Addr, bool)
}

// WatchOutbound follows the node's IPv4 addresses and routes (netlink
// address and route notifications) and calls OnChange whenever the
// outbound address (OutboundAddr: the default route's source) changed,
// until ctx ends. The subscriptions are made before it returns; the
// returned channel is closed once the watcher has stopped.
func WatchOutbound(ctx context.Context, o WatchOptions) (<-chan struct{}, error) {
	done := make(chan struct{})
	addrs := make(chan netlink.AddrUpdate, 64)
	routes := make(chan netlink.RouteUpdate, 64)
	if err := netlink.AddrSubscribe(addrs, done); err != nil {
		close(done)
		return nil, fmt.Errorf("subscribe to address changes: %w", err)
	}
	if err := netlink.RouteSubscribe(routes, done); err != nil {
		close(done)
		return nil, fmt.Errorf("subscribe to route changes: %w", err)
	}
	events := make(chan struct{}, 1)
	stopped := make(chan struct{})
	go func() { // merge both kinds: any of them may move the outbound address
		defer close(events)
		for {
			select {
			case _, ok := <-addrs:
				if !ok {
					addrs = nil
				}
			case _, ok := <-routes:
				if !ok {
					routes = nil
				}
			case <-ctx.Done():
				return
			}
			if addrs == nil && routes == nil {
				return
			}
			select {
			case events <- struct{}{}:
			default: // one pending is enough
			}
		}
	}()
	go func() {
		defer close(stopped)
		defer close(done) // ends the subscriptions
		watchLoop(ctx, events, o)
	}()
	return stopped, nil
}

// watchLoop is WatchOutbound's decision: after each burst of events, once
// Debounce has passed without another, the outbound address is looked up;
// OnChange runs when it differs from the last one seen. A lookup that finds
// none (no default route, e.g. between deleting the old one and adding
// the new) changes nothing: the next event looks again.
func watchLoop(ctx context.Context, events <-chan struct{}, o WatchOptions) {
	if o.Debounce <= 0 {
		o.Debounce = 300 * time.Millisecond
	}
	if o.Lookup == nil {
		o.Lookup = OutboundAddr
	}
	cur := o.Current
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				return
			}
			timer.Reset(o.Debounce) // quiet for Debounce since the last event
		case <-timer.C:
			a, ok := o.Lookup()
			if !ok || a == cur {
				continue
			}
			old := cur
			cur = a
			if o.OnChange != nil {
				o.OnChange(old, a)
			}
		}
	}
}
