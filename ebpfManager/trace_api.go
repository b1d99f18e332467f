package ebpfmanager

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/httpjson"
)

const (
	// DefaultTraceRate bounds a trace's hops per second over the node.
	DefaultTraceRate = 10000
	// DefaultDropRate bounds the drop monitor's drops per second.
	DefaultDropRate = 1000
)

// ParseTraceQuery reads GET /ebpf/trace's and /ebpf/drops' parameters; an
// error names the parameter (ErrInvalid).
func ParseTraceQuery(q map[string][]string, drops bool) (TraceOptions, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	o := TraceOptions{Service: get("service"), Iface: get("iface"), Direction: get("direction"), Verdict: get("verdict"),
		Drops: drops, Rate: DefaultTraceRate}
	if drops {
		o.Rate = DefaultDropRate
	}
	bad := func(k, why string) (TraceOptions, error) {
		return TraceOptions{}, fmt.Errorf("%w: parameter %s=%q: %s", errdefs.ErrInvalid, k, get(k), why)
	}
	if _, err := hooksFor(o.Direction, true); err != nil {
		return bad("direction", "want in or out")
	}
	if err := ParseVerdict(o.Verdict); err != nil || drops && o.Verdict != "" {
		return bad("verdict", "want drop, redirect, accept or next (not with drops)")
	}
	var ok bool
	if v := get("proto"); v != "" {
		if o.Proto, ok = ParseProto(v); !ok || o.Proto == 0 {
			return bad("proto", "want tcp, udp, icmp, icmpv6, sctp or a protocol number")
		}
	}
	if v := get("host"); v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return bad("host", "want an IPv4 or IPv6 address")
		}
		o.Host = a
	}
	for _, p := range []struct {
		k   string
		max uint64
		set func(uint64)
	}{
		{"port", 65535, func(n uint64) { o.Port = uint16(n) }},
		{"count", 1 << 31, func(n uint64) { o.Count = int(n) }},
		{"rate", 1 << 32, func(n uint64) { o.Rate = n }},
	} {
		if v := get(p.k); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || n == 0 || n > p.max {
				return bad(p.k, fmt.Sprintf("want a number from 1 to %d", p.max))
			}
			p.set(n)
		}
	}
	if v := get("duration"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return bad("duration", "want a positive duration such as 10s")
		}
		o.Duration = d
	}
	return o, nil
}

func (m *Manager) serveTrace(w http.ResponseWriter, r *http.Request) {
	m.serveTracing(w, r, false)
}

func (m *Manager) serveDrops(w http.ResponseWriter, r *http.Request) {
	m.serveTracing(w, r, true)
}

// serveTracing streams a trace's paths as JSON lines, flushed one by one,
// until the client goes away, the count or the duration.
func (m *Manager) serveTracing(w http.ResponseWriter, r *http.Request, drops bool) {
	o, err := ParseTraceQuery(r.URL.Query(), drops)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a trace outlives the server's write timeout
	enc := json.NewEncoder(w)
	started := false
	o.Started = func() {
		started = true
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		_ = rc.Flush()
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	err = m.Trace(ctx, o, func(p PacketPath) error {
		if err := enc.Encode(p); err != nil {
			return err
		}
		return rc.Flush()
	})
	if err != nil && !started {
		httpjson.WriteError(w, err)
		return
	}
	if err != nil && r.Context().Err() == nil {
		m.opts.Log.WithError(err).Warn("trace ended")
	}
}
