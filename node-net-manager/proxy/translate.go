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

// An Asker is a Resolver that must ask elsewhere (the cluster) before it can
// answer about some addresses. MustAsk says so without waiting; the
// translator then hands the packet back (Verdict.Ask) instead of waiting
// for Lookup with every other flow held up.
type Asker interface {
	MustAsk(ip netip.Addr) bool
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
	via            netip.AddrPort // the node to tunnel to; invalid: this node
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
	DropNotLocal    = "tunnel: destination is not an instance on this node"
	DropUnknownPeer = "tunnel: sender is not an instance on the sending node"
	DropLoop        = "tunnel: packet would go back into the tunnel"
	DropICMPNoFlow  = "ICMP error about no known flow"
	DropNoAnswer    = "the cluster did not answer about the address"
	DropHeldFull    = "too many packets wait for the cluster"
)

// Verdict says what becomes of a packet.
type Verdict struct {
	Drop string         // why it is dropped; "" to send it on
	Via  netip.AddrPort // the node to tunnel it to; invalid: this node (the TUN)
	// Ask is the address the resolver must ask about before the packet can
	// be judged; the packet is untouched, to be offered again afterwards.
	Ask netip.Addr
}

// Stats counts what the translator did.
type Stats struct {
	Translated  uint64 `json:"translated"`
	NewSessions uint64 `json:"newSessions"`
	Replaced    uint64 `json:"replaced"`  // older flows displaced by a reused source port
	TunnelOut   uint64 `json:"tunnelOut"` // packets sent to other nodes
	Held        uint64 `json:"held"`      // packets that waited for the cluster's answer
	// PeerRTTms is the measured tunnel RTT to each node closest service
	// IPs choose among, in milliseconds, by node tunnel address.
	PeerRTTms map[string]float64 `json:"peerRTTms,omitempty"`
	TunnelIn  uint64             `json:"tunnelIn"` // packets from other nodes delivered here
	Sessions  int                `json:"sessions"`
	Dropped   map[string]uint64  `json:"dropped"`
}

// Translator rewrites packets between service IPs and namespace IPs.
type Translator struct {
	mu       sync.Mutex
	res      Resolver
	self     netip.AddrPort
	former   map[netip.Addr]bool // this node's earlier addresses (SetSelf)
	ranges   []netip.Prefix
	timeout  time.Duration
	now      func() time.Time
	sessions map[flowKey]*session
	rr       map[netip.Addr]uint64
	stats    Stats
	// rtt is the measured tunnel RTT to each node closest IPs choose
	// among (peers); newPeer wakes the prober for a node not probed yet.
	rtt     map[netip.AddrPort]time.Duration
	peers   map[netip.AddrPort]bool
	newPeer chan struct{}
}

// Options configure a Translator.
type Options struct {
	// Ranges are the service ranges (IPv4, and IPv6 if on): new flows are
	// translated only towards addresses in them.
	Ranges []netip.Prefix
	// Timeout is how long an idle session lives (Expire forgets it).
	Timeout time.Duration
	// Self is this node's tunnel address: entries on another node are
	// reached through the tunnel. Entries without a node are local.
	Self netip.AddrPort
}

// NewTranslator returns a translator resolving addresses through res.
func NewTranslator(res Resolver, o Options) *Translator {
	return &Translator{res: res, self: o.Self, ranges: o.Ranges, timeout: o.Timeout, now: time.Now,
		sessions: map[flowKey]*session{}, rr: map[netip.Addr]uint64{}, stats: Stats{Dropped: map[string]uint64{}},
		rtt: map[netip.AddrPort]time.Duration{}, peers: map[netip.AddrPort]bool{}, newPeer: make(chan struct{}, 1)}
}

func (t *Translator) isService(a netip.Addr) bool {
	for _, r := range t.ranges {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

// Translate rewrites an IPv4 or IPv6 packet read from the TUN in place: a
// packet of a known flow by its session, a new flow to a service IP by the
// service's policy. The verdict says whether it goes back to the TUN or
// through the tunnel to another node.
func (t *Translator) Translate(b []byte) Verdict {
	p, err := parse(b)
	if err != nil {
		if e, ok := parseICMPError(b); ok {
			return t.icmpError(&e, false)
		}
		if p.dst.IsValid() && !t.isService(p.dst) {
			return t.drop(DropNotService) // e.g. the kernel's own multicast listener reports
		}
		return t.drop(DropUnsupported)
	}
	key := flowKey{p.proto, p.src, p.sport, p.dst, p.dport}
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.hit(key); s != nil {
		return t.apply(&p, s)
	}
	if !t.isService(p.dst) {
		return t.dropLocked(DropNotService)
	}
	if t.mustAsk(p.dst) {
		return Verdict{Ask: p.dst}
	}
	target, ok := t.choose(p.dst)
	if !ok {
		return t.dropLocked(DropNoInstances)
	}
	senderInst, ok := t.senderInstance(p)
	if !ok {
		return t.dropLocked(DropUnknownSrc)
	}
	dst := target.NsAddr(p.v6)
	rev := flowKey{p.proto, dst, p.dport, senderInst, p.sport}
	if old := t.sessions[rev]; old != nil {
		// The sender reused a source port towards the same instance through
		// another service IP: the target would see one 4-tuple for two flows.
		// The kernel reuses ports of flows that ended, so the newer flow wins.
		delete(t.sessions, old.peer)
		delete(t.sessions, rev)
		t.stats.Replaced++
	}
	now := t.now()
	ends := [2]netip.Addr{p.src, dst}
	fwd := &session{newSrc: senderInst, newDst: dst, via: t.via(target), lastSeen: now, peer: rev, instances: ends}
	t.sessions[key] = fwd
	t.sessions[rev] = &session{newSrc: p.dst, newDst: p.src, lastSeen: now, peer: key, instances: ends}
	t.stats.NewSessions++
	return t.apply(&p, fwd)
}

// Receive takes a packet that came through the tunnel from another node: a
// reply of a flow this node translated is translated back; a new flow must
// come from an instance on the sending node and go to an instance on this
// one, and is delivered as it is, its replies tunnelled back to that node.
func (t *Translator) Receive(b []byte, from netip.AddrPort) Verdict {
	p, err := parse(b)
	if err != nil {
		if e, ok := parseICMPError(b); ok {
			return t.icmpError(&e, true)
		}
		return t.drop(DropUnsupported)
	}
	key := flowKey{p.proto, p.src, p.sport, p.dst, p.dport}
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.hit(key); s != nil {
		if s.via.IsValid() {
			return t.dropLocked(DropLoop)
		}
		t.stats.TunnelIn++
		return t.apply(&p, s)
	}
	if t.mustAsk(p.src) {
		return Verdict{Ask: p.src}
	}
	if !t.fromPeer(p.src, from.Addr()) {
		return t.dropLocked(DropUnknownPeer)
	}
	if !t.isLocalInstance(p.dst, p.v6) {
		return t.dropLocked(DropNotLocal)
	}
	// Both directions pass unchanged; replies go back to the sending node.
	rev := flowKey{p.proto, p.dst, p.dport, p.src, p.sport}
	now, ends := t.now(), [2]netip.Addr{p.src, p.dst}
	t.sessions[key] = &session{newSrc: p.src, newDst: p.dst, lastSeen: now, peer: rev, instances: ends}
	t.sessions[rev] = &session{newSrc: p.dst, newDst: p.src, via: from, lastSeen: now, peer: key, instances: ends}
	t.stats.NewSessions++
	t.stats.TunnelIn++
	return Verdict{}
}

// icmpError translates an ICMP error about a flow by the session of the
// direction it travels in (the reverse of the packet it quotes); an error
// about no known flow is dropped. From the tunnel, it must not go back out.
func (t *Translator) icmpError(e *icmpError, fromTunnel bool) Verdict {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.hit(e.flowKey())
	switch {
	case s == nil:
		return t.dropLocked(DropICMPNoFlow)
	case fromTunnel && s.via.IsValid():
		return t.dropLocked(DropLoop)
	}
	e.apply(s)
	t.stats.Translated++
	if s.via.IsValid() {
		t.stats.TunnelOut++
	} else if fromTunnel {
		t.stats.TunnelIn++
	}
	return Verdict{Via: s.via}
}

// mustAsk says whether the resolver must ask elsewhere about ip first.
func (t *Translator) mustAsk(ip netip.Addr) bool {
	a, ok := t.res.(Asker)
	return ok && a.MustAsk(ip)
}

// hit returns the session of a flow direction, refreshing both directions;
// the caller holds mu.
func (t *Translator) hit(key flowKey) *session {
	s := t.sessions[key]
	if s == nil {
		return nil
	}
	now := t.now()
	s.lastSeen = now
	if peer := t.sessions[s.peer]; peer != nil {
		peer.lastSeen = now
	}
	return s
}

// apply rewrites a packet by a session and says where it goes; the caller holds mu.
func (t *Translator) apply(p *pkt, s *session) Verdict {
	p.rewrite(s.newSrc, s.newDst)
	t.stats.Translated++
	if s.via.IsValid() {
		t.stats.TunnelOut++
	}
	return Verdict{Via: s.via}
}

// senderInstance returns the instance IP, in the packet's family, of the
// local instance that sent it. The caller holds mu.
func (t *Translator) senderInstance(p pkt) (netip.Addr, bool) {
	e, ok := t.find(p.src, func(e table.Entry) bool { return e.NsAddr(p.v6) == p.src && t.local(e) })
	if !ok {
		return netip.Addr{}, false
	}
	return e.ServiceIPOf(table.PolicyInstance, p.v6)
}

// fromPeer says whether src is the instance IP of an instance on the node at addr.
func (t *Translator) fromPeer(src, node netip.Addr) bool {
	_, ok := t.find(src, func(e table.Entry) bool {
		inst, ok := e.ServiceIPOf(table.PolicyInstance, src.Is6())
		return ok && inst == src && e.NodeIP == node && !t.local(e)
	})
	return ok
}

// isLocalInstance says whether dst is the namespace address of an instance on this node.
func (t *Translator) isLocalInstance(dst netip.Addr, v6 bool) bool {
	_, ok := t.find(dst, func(e table.Entry) bool { return e.NsAddr(v6) == dst && t.local(e) })
	return ok
}

// find returns the first entry an address resolves to that match accepts.
func (t *Translator) find(ip netip.Addr, match func(table.Entry) bool) (table.Entry, bool) {
	es, _ := t.res.Lookup(context.Background(), table.Query{IP: ip})
	for _, e := range es {
		if match(e) {
			return e, true
		}
	}
	return table.Entry{}, false
}

// local says whether an entry's instance runs on this node.
func (t *Translator) local(e table.Entry) bool {
	if !e.NodeIP.IsValid() || !t.self.IsValid() {
		return true
	}
	return (e.NodeIP == t.self.Addr() || t.former[e.NodeIP]) && (e.NodePort == 0 || e.NodePort == int(t.self.Port()))
}

// via is where packets to an entry's instance go: nowhere (this node) or its node's tunnel.
func (t *Translator) via(e table.Entry) netip.AddrPort {
	if t.local(e) {
		return netip.AddrPort{}
	}
	port := e.NodePort
	if port == 0 {
		port = int(t.self.Port())
	}
	return netip.AddrPortFrom(e.NodeIP, uint16(port))
}

// choose picks the instance a new flow to a service IP goes to: the one an
// instance IP names; for a closest IP, round robin over the instances on
// this node when there are any, else over those on the nodes with the
// lowest measured tunnel RTT (nearest); else the next in round-robin order.
// The caller holds mu.
func (t *Translator) choose(ip netip.Addr) (table.Entry, bool) {
	entries, err := t.res.Lookup(context.Background(), table.Query{IP: ip})
	if err != nil || len(entries) == 0 {
		return table.Entry{}, false
	}
	v6 := ip.Is6()
	usable := make([]table.Entry, 0, len(entries))
	closest := false
	for _, e := range entries {
		if !e.NsAddr(v6).IsValid() {
			continue
		}
		if inst, ok := e.ServiceIPOf(table.PolicyInstance, v6); ok && inst == ip {
			return e, true
		}
		if c, ok := e.ServiceIPOf(table.PolicyClosest, v6); ok && c == ip {
			closest = true
		}
		usable = append(usable, e)
	}
	if closest {
		usable = t.closestOf(usable)
	}
	if len(usable) == 0 {
		return table.Entry{}, false
	}
	sort.Slice(usable, func(i, j int) bool { return usable[i].Instance < usable[j].Instance })
	n := t.rr[ip]
	t.rr[ip] = n + 1
	return usable[n%uint64(len(usable))], true
}

func (t *Translator) drop(reason string) Verdict {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropLocked(reason)
}

// countHeld records a packet that waits for the resolver.
func (t *Translator) countHeld() {
	t.mu.Lock()
	t.stats.Held++
	t.mu.Unlock()
}

func (t *Translator) dropLocked(reason string) Verdict {
	t.stats.Dropped[reason]++
	return Verdict{Drop: reason}
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
	if len(t.rtt) > 0 {
		s.PeerRTTms = map[string]float64{}
		for n, d := range t.rtt {
			s.PeerRTTms[n.String()] = float64(d.Microseconds()) / 1000
		}
	}
	return s
}
