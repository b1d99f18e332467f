package proxy

import (
	"context"
	"net/netip"
	"sync"

	"github.com/oakestra/netmanager/node-net-manager/table"
)

// Bounds of what waits for the cluster: packets per address asked about,
// and in all.
const (
	maxHeldPerAddr = 16
	maxHeld        = 1024
)

// heldPacket is a packet waiting for the resolver's answer; peer is the node
// it came from through the tunnel, invalid for one from the TUN.
type heldPacket struct {
	b    []byte
	peer netip.AddrPort
}

// holder keeps the packets whose translation needs an address the resolver
// must ask about, asks once per address (off the packet path, so other
// flows go on), and offers them again when the answer is in: a new flow's
// first packet is delivered, not lost. When the resolver cannot answer, a
// packet from the TUN gets an ICMP unreachable, as one to a service without
// instances does.
type holder struct {
	ctx    context.Context
	cancel context.CancelFunc
	o      RunOptions
	mu     sync.Mutex
	held   map[netip.Addr][]heldPacket
	n      int
	wg     sync.WaitGroup
}

func newHolder(ctx context.Context, o RunOptions) *holder {
	ctx, cancel := context.WithCancel(ctx)
	return &holder{ctx: ctx, cancel: cancel, o: o, held: map[netip.Addr][]heldPacket{}}
}

// hold keeps a copy of b until the resolver has an answer about ip.
func (h *holder) hold(b []byte, peer netip.AddrPort, ip netip.Addr) {
	h.mu.Lock()
	q, asking := h.held[ip]
	if len(q) >= maxHeldPerAddr || h.n >= maxHeld {
		h.mu.Unlock()
		h.o.Translator.drop(DropHeldFull)
		return
	}
	h.held[ip] = append(q, heldPacket{b: append([]byte(nil), b...), peer: peer})
	h.n++
	h.mu.Unlock()
	h.o.Translator.countHeld()
	if !asking {
		h.wg.Add(1)
		go h.ask(ip)
	}
}

// ask waits for the resolver's answer about ip and offers the packets
// held for it again.
func (h *holder) ask(ip netip.Addr) {
	defer h.wg.Done()
	_, _ = h.o.Translator.res.Lookup(h.ctx, table.Query{IP: ip}) // a failure leaves ip to be asked about: offer drops it
	h.mu.Lock()
	q := h.held[ip]
	delete(h.held, ip)
	h.n -= len(q)
	h.mu.Unlock()
	if h.ctx.Err() != nil {
		return
	}
	for _, p := range q {
		h.offer(p)
	}
}

// offer judges a held packet again; one that still needs an answer (the
// resolver failed) is dropped as unanswered.
func (h *holder) offer(p heldPacket) {
	var v Verdict
	if p.peer.IsValid() {
		v = h.o.Translator.Receive(p.b, p.peer)
	} else {
		v = h.o.Translator.Translate(p.b)
	}
	if v.Ask.IsValid() {
		v = h.o.Translator.drop(DropNoAnswer)
	}
	if p.peer.IsValid() {
		fromTunnelVerdict(h.o, p.b, p.peer, v)
	} else {
		fromTUNVerdict(h.o, p.b, v)
	}
}

// stop ends the lookups in flight and waits for them.
func (h *holder) stop() {
	h.cancel()
	h.wg.Wait()
}
