package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// WAN health: every interval each WAN sends a GRE probe (payload type
// SD_PROBE_PROTO) from its local address to its peer; the peer's data plane
// reflects it, and the reply reaches a raw GRE socket bound to the WAN.
// A probe unanswered within the timeout is lost. DownAfter losses in a row
// mark the WAN down, UpAfter answers in a row up again; latency, loss and
// jitter over the last Window probes decide which WANs meet a class's SLA.

// probeResult is one probe's outcome.
type probeResult struct {
	lost bool
	rtt  time.Duration
}

// health is a WAN's probe history and state; its methods are pure
// bookkeeping, tested without sockets.
type health struct {
	up                 bool
	losses, answers    int // in a row
	window             []probeResult
	sent, answered     uint64
	downAfter, upAfter int
	size               int
}

func newHealth(h Health) *health {
	return &health{up: true, downAfter: h.DownAfter, upAfter: h.UpAfter, size: h.Window}
}

// record adds a result and reports whether up changed.
func (h *health) record(r probeResult) bool {
	h.window = append(h.window, r)
	if len(h.window) > h.size {
		h.window = h.window[len(h.window)-h.size:]
	}
	was := h.up
	if r.lost {
		h.losses, h.answers = h.losses+1, 0
		if h.losses >= h.downAfter {
			h.up = false
		}
	} else {
		h.answered++
		h.answers, h.losses = h.answers+1, 0
		if h.answers >= h.upAfter {
			h.up = true
		}
	}
	return was != h.up
}

// metrics returns mean RTT, loss and mean RTT change (jitter) over the window.
func (h *health) metrics() (latency time.Duration, lossPct float64, jitter time.Duration) {
	var n, lost int
	var sum, jsum time.Duration
	var prev time.Duration
	var pairs int
	for _, r := range h.window {
		if r.lost {
			lost++
			continue
		}
		if n > 0 {
			d := r.rtt - prev
			if d < 0 {
				d = -d
			}
			jsum += d
			pairs++
		}
		prev = r.rtt
		sum += r.rtt
		n++
	}
	if len(h.window) > 0 {
		lossPct = 100 * float64(lost) / float64(len(h.window))
	}
	if n > 0 {
		latency = sum / time.Duration(n)
	}
	if pairs > 0 {
		jitter = jsum / time.Duration(pairs)
	}
	return
}

// meets reports whether the WAN is up and within sla (nil: any up WAN).
func (h *health) meets(sla *SLA) bool {
	if !h.up {
		return false
	}
	if sla == nil {
		return true
	}
	lat, loss, jit := h.metrics()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return (sla.LatencyMs == 0 || ms(lat) <= sla.LatencyMs) && (sla.LossPercent == 0 || loss <= sla.LossPercent) &&
		(sla.JitterMs == 0 || ms(jit) <= sla.JitterMs)
}

// wanState is one WAN: its data-plane entry, health and prober.
type wanState struct {
	idx   int
	cfg   *Config
	entry sdWAN
	mu    sync.Mutex
	h     *health
	nh    *nexthops // opened on Attach
	stop  chan struct{}
	done  chan struct{}
}

func newWANState(i int, c *Config) *wanState {
	return &wanState{idx: i, cfg: c, h: newHealth(c.Health)}
}

// meets is health.meets under the WAN's lock.
func (w *wanState) meets(sla *SLA) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.entry.Ifindex != 0 && w.h.meets(sla)
}

// startProbes opens the WAN's probe socket and starts probing.
func (w *wanState) startProbes(g *SDWAN) error {
	if w.cfg.Health.Interval.Duration == 0 || w.stop != nil {
		return nil
	}
	fd, err := probeSocket(w.cfg.WANs[w.idx].Interface, w.entry.Local)
	if err != nil {
		return fmt.Errorf("WAN %s probes: %w", w.cfg.WANs[w.idx].Name, err)
	}
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go w.probe(g, fd)
	return nil
}

// stopProbes ends the prober and waits for it.
func (w *wanState) stopProbes() {
	if w.stop == nil {
		return
	}
	close(w.stop)
	<-w.done
	w.stop = nil
}

// probeSocket is a raw GRE socket bound to the WAN's device and address.
func probeSocket(ifname string, local [4]byte) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.IPPROTO_GRE)
	if err != nil {
		return -1, fmt.Errorf("raw GRE socket: %w", err)
	}
	tv := syscall.Timeval{Usec: 20000}
	for _, e := range []error{
		syscall.SetsockoptString(fd, syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, ifname),
		syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv),
		syscall.Bind(fd, &syscall.SockaddrInet4{Addr: local}),
	} {
		if e != nil {
			syscall.Close(fd)
			return -1, fmt.Errorf("probe socket on %s: %w", ifname, e)
		}
	}
	return fd, nil
}

// probe sends a probe every interval, matches replies and reports changes.
// It closes the socket once the reader is gone (so the reader never reads
// a closed, or reused, descriptor), then reports done.
func (w *wanState) probe(g *SDWAN, fd int) {
	defer close(w.done)
	readerDone := make(chan struct{})
	defer func() { <-readerDone; syscall.Close(fd) }()
	replies := make(chan uint32, 64)
	go func() { defer close(readerDone); readReplies(fd, uint8(w.idx), replies, w.stop) }()
	epoch := time.Now()
	tick := time.NewTicker(w.cfg.Health.Interval.Duration)
	defer tick.Stop()
	pending := map[uint32]time.Duration{}
	var seq uint32
	peer := w.entry.Peer
	for {
		select {
		case <-w.stop:
			return
		case s := <-replies:
			if sent, ok := pending[s]; ok {
				delete(pending, s)
				w.report(g, probeResult{rtt: time.Since(epoch) - sent})
			}
		case <-tick.C:
			now := time.Since(epoch)
			for s, sent := range pending {
				if now-sent > w.cfg.Health.Timeout.Duration {
					delete(pending, s)
					w.report(g, probeResult{lost: true})
				}
			}
			seq++
			pending[seq] = now
			w.mu.Lock()
			w.h.sent++
			w.mu.Unlock()
			_ = syscall.Sendto(fd, probePacket(uint8(w.idx), seq, uint64(now)), 0, &syscall.SockaddrInet4{Addr: peer})
		}
	}
}

// report records a result; a change of state or SLA standing is pushed to
// the data plane.
func (w *wanState) report(g *SDWAN, r probeResult) {
	w.mu.Lock()
	changed := w.h.record(r)
	w.mu.Unlock()
	g.healthChanged(w.idx, changed)
}

// probePacket is the GRE header and an sd_probe request (sdwan.h; the
// layout is checked byte by byte by TestProbeReflection).
func probePacket(wan uint8, seq uint32, sent uint64) []byte {
	b := make([]byte, 4+24) // GRE header, sd_probe
	binary.BigEndian.PutUint16(b[2:], sdProbeProto)
	binary.BigEndian.PutUint32(b[4:], sdProbeMagic)
	b[8] = sdProbeRequest
	b[9] = wan
	binary.BigEndian.PutUint32(b[12:], seq)
	binary.NativeEndian.PutUint64(b[20:], sent)
	return b
}

// parseReply returns the sequence number of a reflected probe of WAN wan
// in a raw socket's packet (IPv4 header first).
func parseReply(pkt []byte, wan uint8) (uint32, error) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return 0, errors.New("not IPv4")
	}
	ihl := int(pkt[0]&0x0f) * 4
	b := pkt[ihl:]
	if len(b) < 28 || binary.BigEndian.Uint16(b[2:]) != sdProbeProto || binary.BigEndian.Uint32(b[4:]) != sdProbeMagic {
		return 0, errors.New("not a probe")
	}
	if b[8] != sdProbeReply || b[9] != wan {
		return 0, errors.New("not a reply to this WAN's probe")
	}
	return binary.BigEndian.Uint32(b[12:]), nil
}

// readReplies passes the sequence numbers of replies on until stop.
func readReplies(fd int, wan uint8, out chan<- uint32, stop <-chan struct{}) {
	buf := make([]byte, 2048)
	for {
		select {
		case <-stop:
			return
		default:
		}
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		if s, err := parseReply(buf[:n], wan); err == nil {
			select {
			case out <- s:
			default:
			}
		}
	}
}

// WANInfo is a WAN as GET /wans shows it.
type WANInfo struct {
	Name          string  `json:"name"`
	Interface     string  `json:"interface"`
	Ifindex       uint32  `json:"ifindex"`
	Local         string  `json:"local"`
	Peer          string  `json:"peer"`
	MTU           uint32  `json:"mtu"`
	Up            bool    `json:"up"`
	LatencyMs     float64 `json:"latencyMs"`
	LossPercent   float64 `json:"lossPercent"`
	JitterMs      float64 `json:"jitterMs"`
	ProbesSent    uint64  `json:"probesSent"`
	ProbesAnswerd uint64  `json:"probesAnswered"`
	TxPackets     uint64  `json:"txPackets"`
	TxBytes       uint64  `json:"txBytes"`
	RxPackets     uint64  `json:"rxPackets"`
	RxBytes       uint64  `json:"rxBytes"`
}

// info describes the WAN's health (traffic counters filled by the caller).
func (w *wanState) info() WANInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.cfg.WANs[w.idx]
	lat, loss, jit := w.h.metrics()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	i := WANInfo{Name: c.Name, Interface: c.Interface, Ifindex: w.entry.Ifindex, MTU: w.entry.MTU, Up: w.entry.Ifindex != 0 && w.h.up,
		LatencyMs: ms(lat), LossPercent: loss, JitterMs: ms(jit), ProbesSent: w.h.sent, ProbesAnswerd: w.h.answered, Peer: c.Peer}
	if w.entry.Ifindex != 0 {
		i.Local = netip.AddrFrom4(w.entry.Local).String()
	}
	return i
}
