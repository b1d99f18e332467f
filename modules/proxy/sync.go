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
// removes stale ones; the caller holds mu. After a sync that wrote
// everything it keeps what it wrote (p.last), so the next one writes only
// the difference: an attach among N services costs O(changes) map writes,
// not O(N). Only the control plane writes these maps (the data plane
// changes only the round-robin counters' values); with no last write known
// (a new instance, one re-adopted after a restart, a failed write), a sync
// reads each map whole and makes it hold exactly the plan.
func (p *Proxy) sync() error {
	var es []entry
	for _, e := range p.base.Services.Entries() {
		es = append(es, toEntry(e))
	}
	t := plan(es, p.attached, p.underlay != nil)
	prev, known := translations{}, p.last != nil
	if known {
		prev = *p.last
	}
	p.last = nil
	errs := []error{
		syncMap(p.maps["services"], t.services, prev.services, known, new([4]byte)),
		syncMap(p.maps["backends"], t.backends, prev.backends, known, new(pxBackendKey)),
		syncMap(p.maps["senders"], t.senders, prev.senders, known, new([4]byte)),
		syncCounters(p.maps["rr"], t.services, prev.services, known, new([4]byte)),
		syncMap(p.maps["services6"], t.services6, prev.services6, known, new([16]byte)),
		syncMap(p.maps["backends6"], t.backends6, prev.backends6, known, new(pxBackendKey6)),
		syncMap(p.maps["senders6"], t.senders6, prev.senders6, known, new([16]byte)),
		syncCounters(p.maps["rr6"], t.services6, prev.services6, known, new([16]byte)),
		syncMap(p.maps["remotes"], t.remotes, prev.remotes, known, new([4]byte)),
		syncMap(p.maps["remotes6"], t.remotes6, prev.remotes6, known, new([16]byte)),
		syncMap(p.maps["locals"], t.locals, prev.locals, known, new([4]byte)),
		syncMap(p.maps["locals6"], t.locals6, prev.locals6, known, new([16]byte)),
	}
	peers, scanned := t.peers, error(nil)
	if !known || !containsAll(t.peers, prev.peers) {
		peers, scanned = p.withSessionPeers(t.peers)
	}
	if scanned != nil {
		errs = append(errs, scanned) // no peer goes on a partial scan
	} else {
		errs = append(errs, p.syncPeers(peers))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("push translations: %w", err)
	}
	p.last = &t
	return nil
}

// syncMap makes a hash map hold want: when known, the map holds prev, and
// only what differs is written; otherwise it is read whole (replaceAll).
func syncMap[K, V comparable](m *ebpf.Map, want, prev map[K]V, known bool, k *K) error {
	if !known {
		return replaceAll(m, want, k)
	}
	var errs []error
	for key := range prev {
		if _, ok := want[key]; ok {
			continue
		}
		if err := m.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete from %s: %w", m, err))
		}
	}
	for key, val := range want {
		if old, ok := prev[key]; ok && old == val {
			continue
		}
		if err := m.Put(key, val); err != nil {
			errs = append(errs, fmt.Errorf("update %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

// syncCounters is counters, writing only the difference when known (the
// map has a counter for every service IP of prev).
func syncCounters[K comparable](m *ebpf.Map, services, prev map[K]pxService, known bool, k *K) error {
	if !known {
		return counters(m, services, k)
	}
	var errs []error
	for ip := range prev {
		if _, ok := services[ip]; ok {
			continue
		}
		if err := m.Delete(ip); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete from %s: %w", m, err))
		}
	}
	for ip := range services {
		if _, ok := prev[ip]; ok {
			continue
		}
		if err := m.Update(ip, uint64(0), ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			errs = append(errs, fmt.Errorf("update %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
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

// containsAll says whether every key of sub is in set.
func containsAll[K comparable](set, sub map[K]bool) bool {
	for k := range sub {
		if !set[k] {
			return false
		}
	}
	return true
}

// withSessionPeers adds to want every node a tunnel session still points
// at: a flow under way keeps taking its replies from its node after the
// table lost the node's instances (the cluster table released their job).
//
// sync calls it only when a peer would go: the scan reads both session
// tables whole (two million entries at a million flows, ~0.7 s), and it can
// only keep peers the map already holds. Only the control plane writes the
// peers map, and the data plane makes a session only with a node that is in
// it (an inbound tunnel flow from a node that is not is refused), so every
// session's node is a peer of the last sync; when the new plan keeps all of
// those, the scan would add nothing.
func (p *Proxy) withSessionPeers(want map[[4]byte]bool) (map[[4]byte]bool, error) {
	p.peerScans++
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
