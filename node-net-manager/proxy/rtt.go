package proxy

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"sort"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/table"
)

// Tunnel RTT probes share the tunnel's UDP port with the IP packets it
// carries: a probe's first byte is 0, which no IPv4 or IPv6 packet starts
// with, so a node that does not know probes drops them as unsupported.
//
//	0      4     5     8        16
//	| magic | kind | pad | nonce |
//
// magic is 00 'o' 'a' 'k'; kind 1 asks, 2 answers with the asker's nonce
// (the asker's clock, which only it reads). An answer is as long as the
// question: nothing is amplified.
const (
	probeLen       = 16
	probeAsk       = 1
	probeEcho      = 2
	rttWeight      = 8 // the RTT is a moving average: 1/rttWeight of each sample
	defaultProbeIn = 2 * time.Second
)

var probeMagic = [4]byte{0, 'o', 'a', 'k'}

func isProbe(b []byte) bool { return len(b) == probeLen && [4]byte(b[:4]) == probeMagic }

func probe(kind byte, nonce uint64) []byte {
	b := make([]byte, probeLen)
	copy(b, probeMagic[:])
	b[4] = kind
	binary.BigEndian.PutUint64(b[8:], nonce)
	return b
}

// nearest is what a closest service IP chooses among: the instances on this
// node when there are any; else those on the nodes with the lowest measured
// tunnel RTT; else (no RTT known) all of them. It is pure.
func nearest(es []table.Entry, local func(table.Entry) bool, node func(table.Entry) netip.AddrPort, rtt map[netip.AddrPort]time.Duration) []table.Entry {
	var here, best []table.Entry
	var min time.Duration
	for _, e := range es {
		if local(e) {
			here = append(here, e)
			continue
		}
		d, ok := rtt[node(e)]
		switch {
		case !ok:
		case len(best) == 0 || d < min:
			best, min = []table.Entry{e}, d
		case d == min:
			best = append(best, e)
		}
	}
	switch {
	case len(here) > 0:
		return here
	case len(best) > 0:
		return best
	}
	return es
}

// closestOf applies nearest with the RTTs measured so far, and asks for the
// nodes it has none of to be probed. The caller holds mu.
func (t *Translator) closestOf(es []table.Entry) []table.Entry {
	for _, e := range es {
		if t.local(e) {
			continue
		}
		if n := t.via(e); !t.peers[n] {
			t.peers[n] = true
			select {
			case t.newPeer <- struct{}{}:
			default:
			}
		}
	}
	return nearest(es, t.local, t.via, t.rtt)
}

// peersToProbe are the nodes closest service IPs chose among.
func (t *Translator) peersToProbe() []netip.AddrPort {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]netip.AddrPort, 0, len(t.peers))
	for p := range t.peers {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Compare(out[j]) < 0 })
	return out
}

// measured records an RTT sample to a node.
func (t *Translator) measured(node netip.AddrPort, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.rtt[node]; ok {
		d = old + (d-old)/rttWeight
	}
	t.rtt[node] = d
}

// prober sends a probe to every node closest IPs choose among, every
// interval and as soon as a new one is wanted, and reads the answers' RTTs.
type prober struct {
	o     RunOptions
	start time.Time
}

func (p *prober) run(ctx context.Context) {
	every := p.o.ProbeEvery
	if every <= 0 {
		every = defaultProbeIn
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		for _, n := range p.o.Translator.peersToProbe() {
			if _, err := p.o.Tunnel.WriteTo(probe(probeAsk, uint64(time.Since(p.start))), net.UDPAddrFromAddrPort(n)); err != nil {
				p.o.Log.WithError(err).WithField("node", n).Debug("tunnel: could not send an RTT probe")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-p.o.Translator.newPeer:
		}
	}
}

// handle answers a probe, or takes the RTT from an answer.
func (p *prober) handle(b []byte, from netip.AddrPort) {
	nonce := binary.BigEndian.Uint64(b[8:])
	switch b[4] {
	case probeAsk:
		_, _ = p.o.Tunnel.WriteTo(probe(probeEcho, nonce), net.UDPAddrFromAddrPort(from))
	case probeEcho:
		if d := time.Since(p.start) - time.Duration(nonce); d >= 0 && d < time.Minute {
			p.o.Translator.measured(from, d)
		}
	}
}
