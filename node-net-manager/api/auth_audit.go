package api

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"sync"
)

// Audit counts the API's writes and refusals for /metrics. The zero value
// is ready; a nil *Audit counts nothing.
type Audit struct {
	mu      sync.Mutex
	writes  map[WriteKey]uint64
	refused map[string]uint64
}

// WriteKey is one class of write: its method, the first segment of its
// path (routeGroup), its status and how its caller was recognised (unix,
// uid, token, or none when it was refused).
type WriteKey struct {
	Method, RouteGroup, Status, WhoKind string
}

// WriteCount is how many writes of a class were answered.
type WriteCount struct {
	WriteKey
	Count uint64
}

// RefusedCount is how many requests were refused for a reason.
type RefusedCount struct {
	Reason string
	Count  uint64
}

func (a *Audit) countWrite(method, group string, status int, who string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.writes == nil {
		a.writes = map[WriteKey]uint64{}
	}
	a.writes[WriteKey{Method: method, RouteGroup: group, Status: strconv.Itoa(status), WhoKind: who}]++
}

func (a *Audit) countRefused(reason string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refused == nil {
		a.refused = map[string]uint64{}
	}
	a.refused[reason]++
}

// Writes are the writes answered so far, by class, in a stable order.
func (a *Audit) Writes() []WriteCount {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]WriteCount, 0, len(a.writes))
	for k, n := range a.writes {
		out = append(out, WriteCount{WriteKey: k, Count: n})
	}
	slices.SortFunc(out, func(x, y WriteCount) int {
		return cmp.Or(cmp.Compare(x.Method, y.Method), cmp.Compare(x.RouteGroup, y.RouteGroup),
			cmp.Compare(x.Status, y.Status), cmp.Compare(x.WhoKind, y.WhoKind))
	})
	return out
}

// Refused are the requests refused so far, by reason, sorted: every
// reason, those that never happened at 0.
func (a *Audit) Refused() []RefusedCount {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	all := map[string]uint64{ReasonNoTransport: 0, ReasonPeerNotAllowed: 0, ReasonPeerUnknown: 0, ReasonWrongToken: 0}
	maps.Copy(all, a.refused)
	out := make([]RefusedCount, 0, len(all))
	for _, r := range slices.Sorted(maps.Keys(all)) {
		out = append(out, RefusedCount{Reason: r, Count: all[r]})
	}
	return out
}
