package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strings"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

func (p *Proxy) serveTranslations(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string][]string{}
	var k pxBackendKey
	var b pxBackend
	it := p.maps["backends"].Iterate()
	for it.Next(&k, &b) {
		s := netip.AddrFrom4(k.ServiceIP).String()
		out[s] = append(out[s], netip.AddrFrom4(b.NsIP).String())
	}
	var k6 pxBackendKey6
	var b6 pxBackend6
	it6 := p.maps["backends6"].Iterate()
	for it6.Next(&k6, &b6) {
		s := netip.AddrFrom16(k6.ServiceIP).String()
		out[s] = append(out[s], netip.AddrFrom16(b6.NsIP).String())
	}
	for _, v := range out {
		sort.Strings(v)
	}
	module.WriteJSON(w, http.StatusOK, out)
}

// Flow is a session as the API shows it.
type Flow struct {
	Proto string `json:"proto"`
	From  string `json:"from"`
	To    string `json:"to"`
	NewTo string `json:"translatedTo"`
}

func newFlow(proto uint8, src, dst netip.Addr, sport, dport [2]byte, newSrc, newDst netip.Addr) Flow {
	name := map[uint8]string{1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}[proto]
	ap := func(a netip.Addr, b [2]byte) string {
		return netip.AddrPortFrom(a, uint16(b[0])<<8|uint16(b[1])).String()
	}
	return Flow{Proto: name, From: ap(src, sport), To: ap(dst, dport), NewTo: fmt.Sprintf("%s from %s", newDst, newSrc)}
}

func (p *Proxy) serveSessions(w http.ResponseWriter, _ *http.Request) {
	const limit = 100
	flows := []Flow{}
	n := 0
	list := func() bool { // only the listed ones are formatted: there may be millions
		n++
		return len(flows) < limit
	}
	err := errors.Join(
		scan(p.maps["sessions"], func(k pxFlow, s pxSession) {
			if list() {
				flows = append(flows, newFlow(k.Proto, netip.AddrFrom4(k.Src), netip.AddrFrom4(k.Dst), k.Sport, k.Dport,
					netip.AddrFrom4(s.NewSrc), netip.AddrFrom4(s.NewDst)))
			}
		}),
		scan(p.maps["sessions6"], func(k pxFlow6, s pxSession6) {
			if list() {
				flows = append(flows, newFlow(k.Proto, netip.AddrFrom16(k.Src), netip.AddrFrom16(k.Dst), k.Sport, k.Dport,
					netip.AddrFrom16(s.NewSrc), netip.AddrFrom16(s.NewDst)))
			}
		}))
	if err != nil {
		module.WriteError(w, http.StatusInternalServerError, fmt.Errorf("read the sessions: %w", err))
		return
	}
	sort.Slice(flows, func(i, j int) bool { return strings.Compare(flows[i].From, flows[j].From) < 0 })
	module.WriteJSON(w, http.StatusOK, map[string]any{"count": n, "listed": len(flows), "sessions": flows})
}

// serveStats answers the data plane's counters and the control plane's miss figures.
func (p *Proxy) serveStats(w http.ResponseWriter, _ *http.Request) {
	out, err := p.dataPlaneStats()
	if err != nil {
		module.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	for k, v := range p.missStats() {
		out[k] = v
	}
	module.WriteJSON(w, http.StatusOK, out)
}

// dataPlaneStats sums the data plane's per-CPU counters, by statNames.
func (p *Proxy) dataPlaneStats() (map[string]uint64, error) {
	out := make(map[string]uint64, len(statNames))
	for i, name := range statNames {
		var perCPU []uint64
		if err := p.maps["stats"].Lookup(uint32(i), &perCPU); err != nil {
			return nil, fmt.Errorf("read stat %s: %w", name, err)
		}
		for _, v := range perCPU {
			out[name] += v
		}
	}
	return out, nil
}
