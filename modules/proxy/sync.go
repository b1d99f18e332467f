package main

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// toEntry keeps what the proxy needs of a service table entry, each service
// IP by its family.
func toEntry(e module.ServiceEntry) entry {
	x := entry{name: e.Name, instance: e.Instance, nsIP: e.NsIP.Unmap(), nsIP6: e.NsIPv6, remote: e.Remote,
		node: netip.AddrPortFrom(e.Node.Addr().Unmap(), e.Node.Port())}
	for _, s := range e.ServiceIPs {
		a := s.Address.Unmap()
		switch {
		case s.Policy == "round_robin" && a.Is4():
			x.rrIP = a
		case s.Policy == "instance" && a.Is4():
			x.instIP = a
		case s.Policy == "round_robin" && a.Is6():
			x.rrIP6 = a
		case s.Policy == "instance" && a.Is6():
			x.instIP6 = a
		}
	}
	return x
}

// sync writes the translations the table and the attachments call for and
// removes stale ones; the caller holds mu.
func (p *Proxy) sync() error {
	var es []entry
	for _, e := range p.base.Services.Entries() {
		es = append(es, toEntry(e))
	}
	t := plan(es, p.attached, p.underlay != nil)
	errs := []error{
		replaceAll(p.maps["services"], t.services, new([4]byte)),
		replaceAll(p.maps["backends"], t.backends, new(pxBackendKey)),
		replaceAll(p.maps["senders"], t.senders, new([4]byte)),
		counters(p.maps["rr"], t.services, new([4]byte)),
		replaceAll(p.maps["services6"], t.services6, new([16]byte)),
		replaceAll(p.maps["backends6"], t.backends6, new(pxBackendKey6)),
		replaceAll(p.maps["senders6"], t.senders6, new([16]byte)),
		counters(p.maps["rr6"], t.services6, new([16]byte)),
		replaceAll(p.maps["remotes"], t.remotes, new([4]byte)),
		replaceAll(p.maps["remotes6"], t.remotes6, new([16]byte)),
		replaceAll(p.maps["locals"], t.locals, new([4]byte)),
		replaceAll(p.maps["locals6"], t.locals6, new([16]byte)),
	}
	if peers, err := p.withSessionPeers(t.peers); err != nil {
		errs = append(errs, err)
	} else {
		errs = append(errs, p.syncPeers(peers))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("push translations: %w", err)
	}
	return nil
}

// replaceAll makes a hash map hold exactly want.
func replaceAll[K comparable, V any](m *ebpf.Map, want map[K]V, k *K) error {
	errs := deleteStale[K, V](m, func(key K) bool { _, ok := want[key]; return ok }, k)
	for key, val := range want {
		if err := m.Put(key, val); err != nil {
			errs = append(errs, fmt.Errorf("update %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

// counters gives every service IP a round-robin counter (kept across syncs,
// so the rotation goes on) and removes those of service IPs gone.
func counters[K comparable](m *ebpf.Map, services map[K]pxService, k *K) error {
	errs := deleteStale[K, uint64](m, func(key K) bool { _, ok := services[key]; return ok }, k)
	for ip := range services {
		if err := m.Update(ip, uint64(0), ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			errs = append(errs, fmt.Errorf("update %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

// deleteStale removes the entries of a hash map (values of type V) whose key
// keep refuses.
func deleteStale[K comparable, V any](m *ebpf.Map, keep func(K) bool, k *K) []error {
	var stale []K
	var v V
	it := m.Iterate()
	for it.Next(k, &v) {
		if !keep(*k) {
			stale = append(stale, *k)
		}
	}
	var errs []error
	if err := it.Err(); err != nil {
		errs = append(errs, fmt.Errorf("iterate %s: %w", m, err))
	}
	for _, s := range stale {
		if err := m.Delete(s); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete from %s: %w", m, err))
		}
	}
	return errs
}

// dropSessions removes the sessions from or to an instance's namespace
// addresses; the caller holds mu.
func (p *Proxy) dropSessions(ip, ip6 netip.Addr) error {
	errs := []error{dropWhere(p.maps["sessions"], func(k pxFlow, s pxSession) bool {
		return netip.AddrFrom4(k.Src) == ip || netip.AddrFrom4(s.NewDst) == ip
	})}
	if ip6.IsValid() {
		errs = append(errs, dropWhere(p.maps["sessions6"], func(k pxFlow6, s pxSession6) bool {
			return netip.AddrFrom16(k.Src) == ip6 || netip.AddrFrom16(s.NewDst) == ip6
		}))
	}
	return errors.Join(errs...)
}

func dropWhere[K, V any](m *ebpf.Map, match func(K, V) bool) error {
	var stale []K
	if err := scan(m, func(k K, v V) {
		if match(k, v) {
			stale = append(stale, k)
		}
	}); err != nil {
		return fmt.Errorf("drop sessions: %w", err)
	}
	if err := deleteKeys(m, stale); err != nil {
		return fmt.Errorf("drop sessions: %w", err)
	}
	return nil
}

// withSessionPeers adds to want every node a tunnel session still points
// at: a flow under way keeps taking its replies from its node after the
// table lost the node's instances (the cluster table released their job).
func (p *Proxy) withSessionPeers(want map[[4]byte]bool) (map[[4]byte]bool, error) {
	add := func(nodes ...[4]byte) {
		for _, n := range nodes {
			if n != ([4]byte{}) {
				want[n] = true
			}
		}
	}
	err := errors.Join(
		scan(p.maps["sessions"], func(_ pxFlow, s pxSession) { add(s.NodeIP, s.FromNode) }),
		scan(p.maps["sessions6"], func(_ pxFlow6, s pxSession6) { add(s.NodeIP, s.FromNode) }))
	if err != nil {
		return want, fmt.Errorf("find the peers of sessions: %w", err)
	}
	return want, nil
}
