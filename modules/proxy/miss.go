package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Misses: the data plane reports a packet it found no translation for (at
// most one per service IP and second) through the "misses" ring buffer; the
// packet itself went on to the user-space proxy. The control plane resolves
// the service IP through the service table and, when an instance attached
// here should have been reachable in the kernel, pushes the translations
// again so the flow's next packets hit.

// missOutcome is what a miss calls for.
type missOutcome int

const (
	// missNoLocal: no local instance behind the service IP, or the sender is
	// not a local service: the user-space path's to serve.
	missNoLocal missOutcome = iota
	// missPresent: the kernel has the translation by now (a push raced the packet).
	missPresent
	// missResync: a local instance should be reachable in the kernel but its
	// translation is missing: push the translations again.
	missResync
)

// missCounters are the control plane's miss statistics.
type missCounters struct {
	misses, resolved, unresolved, present atomic.Uint64
}

// decideMiss decides what a miss from sender to svc calls for, given the
// service table's answer for svc, the attached instances and whether the
// kernel's tables hold what a translation needs. It is pure.
func decideMiss(svc, sender netip.Addr, found []module.ServiceEntry, attached map[netip.Addr]local, translated bool) missOutcome {
	if !hasLocalTarget(svc, found, attached) || !isLocalSender(sender, attached) {
		return missNoLocal
	}
	if translated {
		return missPresent
	}
	return missResync
}

// hasLocalTarget: an instance behind svc is attached here and has an address
// of svc's family, and none is on another node (such a service IP is the
// user-space proxy's).
func hasLocalTarget(svc netip.Addr, found []module.ServiceEntry, attached map[netip.Addr]local) bool {
	for _, e := range found {
		if e.Remote {
			return false
		}
	}
	for _, e := range found {
		if _, ok := attached[e.NsIP]; ok && (svc.Is4() || e.NsIPv6.Is6()) {
			return true
		}
	}
	return false
}

func isLocalSender(sender netip.Addr, attached map[netip.Addr]local) bool {
	if sender.Is4() {
		_, ok := attached[sender]
		return ok
	}
	for _, l := range attached {
		if l.nsIP6 == sender {
			return true
		}
	}
	return false
}

// parseMiss decodes a ring buffer record.
func parseMiss(raw []byte) (svc, sender netip.Addr, proto uint8, err error) {
	var ev pxMiss
	if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &ev); err != nil {
		return svc, sender, 0, fmt.Errorf("decode a miss event of %d bytes: %w", len(raw), err)
	}
	switch ev.Family {
	case 4:
		return netip.AddrFrom4([4]byte(ev.ServiceIP[:4])), netip.AddrFrom4([4]byte(ev.Sender[:4])), ev.Proto, nil
	case 6:
		return netip.AddrFrom16(ev.ServiceIP), netip.AddrFrom16(ev.Sender), ev.Proto, nil
	}
	return svc, sender, 0, fmt.Errorf("miss event of family %d", ev.Family)
}

// startMisses reads the ring buffer until Close.
func (p *Proxy) startMisses() error {
	rd, err := ringbuf.NewReader(p.maps["misses"])
	if err != nil {
		return fmt.Errorf("read the misses ring buffer: %w", err)
	}
	p.reader = rd
	p.readerDone = make(chan struct{})
	go p.readMisses(rd)
	return nil
}

// stopMisses closes the reader and waits for its goroutine.
func (p *Proxy) stopMisses() error {
	if p.reader == nil {
		return nil
	}
	err := p.reader.Close()
	<-p.readerDone
	p.reader = nil
	if err != nil {
		return fmt.Errorf("close the misses reader: %w", err)
	}
	return nil
}

func (p *Proxy) readMisses(rd *ringbuf.Reader) {
	defer close(p.readerDone)
	var rec ringbuf.Record
	for {
		if err := rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) {
				return
			}
			p.base.Log.WithError(err).Warn("proxy: read a miss event")
			time.Sleep(100 * time.Millisecond) // no busy loop on an error that persists
			continue
		}
		svc, sender, proto, err := parseMiss(rec.RawSample)
		if err != nil {
			p.base.Log.WithError(err).Warn("proxy: miss event")
			continue
		}
		p.handleMiss(svc, sender, proto)
	}
}

// handleMiss resolves one miss.
func (p *Proxy) handleMiss(svc, sender netip.Addr, proto uint8) {
	p.counters.misses.Add(1)
	found := p.base.Services.Lookup(svc)
	p.mu.Lock()
	defer p.mu.Unlock()
	log := p.base.Log.WithField("serviceIP", svc).WithField("sender", sender).WithField("proto", proto)
	switch decideMiss(svc, sender, found, p.attached, p.translated(svc, sender)) {
	case missNoLocal:
		p.counters.unresolved.Add(1)
		log.Debug("proxy: miss with no local instance: left to the user-space proxy")
	case missPresent:
		p.counters.present.Add(1)
	case missResync:
		p.last = nil // the maps do not hold what the last sync wrote: write them whole
		err := p.sync()
		if err == nil && p.translated(svc, sender) {
			p.counters.resolved.Add(1)
			log.Info("proxy: a missing translation was pushed again")
			return
		}
		p.counters.unresolved.Add(1)
		log.WithError(err).Warn("proxy: a miss for a local instance could not be resolved")
	}
}

// translated says whether the kernel's tables hold all a new flow from sender
// to svc needs: the service, its backends, its round-robin counter and the
// sender's instance IP. The caller holds mu.
func (p *Proxy) translated(svc, sender netip.Addr) bool {
	var s pxService
	var n uint64
	if svc.Is4() {
		var b pxBackend
		var inst [4]byte
		if p.maps["services"].Lookup(svc.As4(), &s) != nil || s.Count == 0 || p.maps["senders"].Lookup(sender.As4(), &inst) != nil ||
			(s.Kind == 0 && p.maps["rr"].Lookup(svc.As4(), &n) != nil) {
			return false
		}
		for i := uint32(0); i < s.Count; i++ {
			if p.maps["backends"].Lookup(pxBackendKey{ServiceIP: svc.As4(), Index: i}, &b) != nil {
				return false
			}
		}
		return true
	}
	var b pxBackend6
	var inst [16]byte
	if p.maps["services6"].Lookup(svc.As16(), &s) != nil || s.Count == 0 || p.maps["senders6"].Lookup(sender.As16(), &inst) != nil ||
		(s.Kind == 0 && p.maps["rr6"].Lookup(svc.As16(), &n) != nil) {
		return false
	}
	for i := uint32(0); i < s.Count; i++ {
		if p.maps["backends6"].Lookup(pxBackendKey6{ServiceIP: svc.As16(), Index: i}, &b) != nil {
			return false
		}
	}
	return true
}

// missStats are the control plane's figures for GET /stats.
func (p *Proxy) missStats() map[string]uint64 {
	return map[string]uint64{
		"misses":            p.counters.misses.Load(),
		"resolved":          p.counters.resolved.Load(),
		"unresolved":        p.counters.unresolved.Load(),
		"alreadyTranslated": p.counters.present.Load(),
	}
}
