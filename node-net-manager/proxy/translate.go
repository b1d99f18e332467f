package proxy

import (
	"context"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/table"
)

// Resolver answers service table queries (table.Standalone, or a cluster table).
type Resolver interface {
	Lookup(ctx context.Context, q table.Query) ([]table.Entry, error)
}

type flowKey struct {
	proto uint8
	src   netip.Addr
	sport uint16
	dst   netip.Addr
	dport uint16
}

// session is one direction of a translated flow.
type session struct {
	newSrc, newDst netip.Addr
	lastSeen       time.Time
	peer           flowKey       // the other direction's key
	instances      [2]netip.Addr // namespace IPs of the two ends, for removal
}

// Drop reasons.
const (
	DropUnsupported = "unsupported packet"
	DropNotService  = "not a service address"
	DropNoInstances = "no instances"
	DropUnknownSrc  = "sender is not a known service"
)

// Stats counts what the translator did.
type Stats struct {
	Translated  uint64            `json:"translated"`
	NewSessions uint64            `json:"newSessions"`
	Replaced    uint64            `json:"replaced"` // older flows displaced by a reused source port
	Sessions    int               `json:"sessions"`
	Dropped     map[string]uint64 `json:"dropped"`
}

// Translator rewrites packets between service IPs and namespace IPs.
type Translator struct {
	mu       sync.Mutex
	res      Resolver
	ranges   []netip.Prefix
	timeout  time.Duration
	now      func() time.Time
	sessions map[flowKey]*session
	rr       map[netip.Addr]uint64
	stats    Stats
}

// Options configure a Translator.
type Options struct {
	// Ranges are the service ranges (IPv4, and IPv6 if on): new flows are
	// translated only towards addresses in them.
	Ranges []netip.Prefix
	// Timeout is how long an idle session lives (Expire forgets it).
	Timeout time.Duration
}

// NewTranslator returns a translator resolving addresses through res.
func NewTranslator(res Resolver, o Options) *Translator {
	return &Translator{res: res, ranges: o.Ranges, timeout: o.Timeout, now: time.Now,
		sessions: map[flowKey]*session{}, rr: map[netip.Addr]uint64{}, stats: Stats{Dropped: map[string]uint64{}}}
}

func (t *Translator) isService(a netip.Addr) bool {
	for _, r := range t.ranges {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

// Translate rewrites an IPv4 or IPv6 packet in place. It returns "" when the packet is
// to be sent on, or the reason it is dropped.
func (t *Translator) Translate(b []byte) string {
	p, err := parse(b)
	if err != nil {
		if p.dst.IsValid() && !t.isService(p.dst) {
			return t.drop(DropNotService) // e.g. the kernel's own multicast listener reports
		}
		return t.drop(DropUnsupported)
	}
	key := flowKey{p.proto, p.src, p.sport, p.dst, p.dport}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if s := t.sessions[key]; s != nil {
		s.lastSeen = now
		if peer := t.sessions[s.peer]; peer != nil {
			peer.lastSeen = now
		}
		p.rewrite(s.newSrc, s.newDst)
		t.stats.Translated++
		return ""
	}
	if !t.isService(p.dst) {
		return t.dropLocked(DropNotService)
	}
	target, ok := t.choose(p.dst)
	if !ok {
		return t.dropLocked(DropNoInstances)
	}
	senders, _ := t.res.Lookup(context.Background(), table.Query{IP: p.src})
	var senderInst netip.Addr
	for _, e := range senders {
		if e.NsAddr(p.v6) == p.src {
			senderInst, _ = e.ServiceIPOf(table.PolicyInstance, p.v6)
		}
	}
	if !senderInst.IsValid() {
		return t.dropLocked(DropUnknownSrc)
	}
	rev := flowKey{p.proto, target, p.dport, senderInst, p.sport}
	if old := t.sessions[rev]; old != nil {
		// The sender reused a source port towards the same instance through
		// another service IP: the target would see one 4-tuple for two flows.
		// The kernel reuses ports of flows that ended, so the newer flow wins.
		delete(t.sessions, old.peer)
		delete(t.sessions, rev)
		t.stats.Replaced++
	}
	ends := [2]netip.Addr{p.src, target}
	t.sessions[key] = &session{newSrc: senderInst, newDst: target, lastSeen: now, peer: rev, instances: ends}
	t.sessions[rev] = &session{newSrc: p.dst, newDst: p.src, lastSeen: now, peer: key, instances: ends}
	t.stats.NewSessions++
	t.stats.Translated++
	p.rewrite(senderInst, target)
	return ""
}

// choose picks the instance a new flow to a service IP goes to: the one an
// instance IP names, or the next in round-robin order. The caller holds mu.
func (t *Translator) choose(ip netip.Addr) (netip.Addr, bool) {
	entries, err := t.res.Lookup(context.Background(), table.Query{IP: ip})
	if err != nil || len(entries) == 0 {
		return netip.Addr{}, false
	}
	v6 := ip.Is6()
	for _, e := range entries {
		if inst, ok := e.ServiceIPOf(table.PolicyInstance, v6); ok && inst == ip {
			return e.NsAddr(v6), e.NsAddr(v6).IsValid()
		}
	}
	usable := make([]table.Entry, 0, len(entries))
	for _, e := range entries {
		if e.NsAddr(v6).IsValid() {
			usable = append(usable, e)
		}
	}
	if len(usable) == 0 {
		return netip.Addr{}, false
	}
	sort.Slice(usable, func(i, j int) bool { return usable[i].Instance < usable[j].Instance })
	n := t.rr[ip]
	t.rr[ip] = n + 1
	return usable[n%uint64(len(usable))].NsAddr(v6), true
}

func (t *Translator) drop(reason string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropLocked(reason)
}

func (t *Translator) dropLocked(reason string) string {
	t.stats.Dropped[reason]++
	return reason
}

// Forget removes the sessions of an instance that went away (by its
// namespace addresses), so new packets of its flows are translated anew (to
// another instance).
func (t *Translator) Forget(nsIPs ...netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ip := range nsIPs {
		if !ip.IsValid() {
			continue
		}
		for k, s := range t.sessions {
			if s.instances[0] == ip || s.instances[1] == ip {
				delete(t.sessions, k)
			}
		}
	}
}

// Expire forgets sessions idle for longer than the timeout.
func (t *Translator) Expire() {
	t.mu.Lock()
	defer t.mu.Unlock()
	cut := t.now().Add(-t.timeout)
	for k, s := range t.sessions {
		if s.lastSeen.Before(cut) {
			delete(t.sessions, k)
		}
	}
}

// Stats returns a copy of the counters.
func (t *Translator) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.Sessions = len(t.sessions) / 2
	s.Dropped = map[string]uint64{}
	for k, v := range t.stats.Dropped {
		s.Dropped[k] = v
	}
	return s
}
