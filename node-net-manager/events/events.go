package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// Type names an event.
type Type string

const (
	// ServiceCreated: the service's veth is up, addressed and on the bridge.
	ServiceCreated Type = "ServiceCreated"
	// ServiceRemoved: the service is about to lose its veth.
	ServiceRemoved Type = "ServiceRemoved"
)

// Service is what subscribers learn about a service instance.
type Service struct {
	ServiceName string     `json:"serviceName"`
	Instance    int        `json:"instanceNumber"`
	HostVeth    string     `json:"hostVeth"`
	HostIfindex int        `json:"hostIfindex"`
	Peer        string     `json:"peer"`
	Netns       string     `json:"netns"` // path of the service's network namespace
	PID         int        `json:"pid,omitempty"`
	IPv4        netip.Addr `json:"nsAddress"`
	IPv6        netip.Addr `json:"nsAddressv6,omitzero"`
	// Modules are the eBPF modules the service's SLA asks for on its veth.
	Modules []Module `json:"ebpfModules,omitempty"`
}

// Module is one SLA entry of ebpfModules: a module name and its raw JSON config.
type Module struct {
	Name   string          `json:"name"`
	Config json.RawMessage `json:"config,omitempty"`
}

// Event is one lifecycle change.
type Event struct {
	Type    Type
	Service Service
}

// Handler receives events. For ServiceCreated a returned error fails the deploy;
// for ServiceRemoved it is reported and the removal goes on.
type Handler func(ctx context.Context, ev Event) error

type subscription struct {
	id   uint64
	name string
	h    Handler
}

// Bus delivers events to subscribers. The zero value is ready to use.
type Bus struct {
	mu     sync.Mutex
	nextID uint64
	subs   []subscription
}

// Subscribe adds a handler under a name used in error messages and returns a
// function that removes it.
func (b *Bus) Subscribe(name string, h Handler) (cancel func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextID++
	id := b.nextID
	b.subs = append(b.subs, subscription{id: id, name: name, h: h})
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for i, s := range b.subs {
			if s.id == id {
				b.subs = append(b.subs[:i:i], b.subs[i+1:]...)
				return
			}
		}
	}
}

func (b *Bus) snapshot() []subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]subscription(nil), b.subs...)
}

// Publish delivers ev to every subscriber in order.
//
// ServiceCreated stops at the first failing subscriber, delivers ServiceRemoved to
// the ones that had accepted it (in reverse order), and returns the failure.
// ServiceRemoved is delivered to every subscriber and returns their joined errors.
// A panicking subscriber counts as a failing one.
func (b *Bus) Publish(ctx context.Context, ev Event) error {
	subs := b.snapshot()
	if ev.Type != ServiceCreated {
		var errs []error
		for _, s := range subs {
			errs = append(errs, deliver(ctx, s, ev))
		}
		return errors.Join(errs...)
	}
	for i, s := range subs {
		err := deliver(ctx, s, ev)
		if err == nil {
			continue
		}
		undo := Event{Type: ServiceRemoved, Service: ev.Service}
		var errs []error
		errs = append(errs, err)
		for j := i - 1; j >= 0; j-- {
			if uerr := deliver(ctx, subs[j], undo); uerr != nil {
				errs = append(errs, fmt.Errorf("undo: %w", uerr))
			}
		}
		return errors.Join(errs...)
	}
	return nil
}

func deliver(ctx context.Context, s subscription, ev Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: panic handling %s: %v", s.name, ev.Type, r)
		}
	}()
	if err := s.h(ctx, ev); err != nil {
		return fmt.Errorf("%s: %s: %w", s.name, ev.Type, err)
	}
	return nil
}
