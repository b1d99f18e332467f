package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Errors of rule changes, mapped to statuses at the API edges.
var (
	errInvalid  = errors.New("invalid")
	errNotFound = errors.New("not found")
	errExists   = errors.New("already exists")
)

// healthChanged follows a WAN's probe result into the data plane: its up
// flag when that changed, and the LBR slots of every class (new flows of a
// class leave a WAN that breaks its SLA; existing flows stay until their WAN
// is down).
func (g *SDWAN) healthChanged(i int, upChanged bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	w := g.wans[i]
	if upChanged && w.entry.Ifindex != 0 {
		w.mu.Lock()
		w.entry.Up = 0
		if w.h.up {
			w.entry.Up = 1
		}
		e := w.entry
		w.mu.Unlock()
		if err := g.tables.m["wans"].Put(uint32(i), e); err != nil {
			g.base.Log.WithError(err).Warn("sdwan: write a WAN's state")
		}
		if e.Up == 0 {
			if err := w.nh.release(int(e.Ifindex), netip.AddrFrom4(e.Nexthop)); err != nil {
				g.base.Log.WithError(err).Warn("sdwan: release the next hop of a WAN that is down")
			}
		}
		g.base.Log.WithField("wan", g.cfg.WANs[i].Name).WithField("up", e.Up == 1).Info("sdwan: WAN state changed")
	}
	if err := g.writeLBRs(); err != nil {
		g.base.Log.WithError(err).Warn("sdwan: write LBR slots")
	}
}

// lbrValue computes a class's slots: the WANs meeting its SLA, else the
// WANs that are up, else all its WANs (the data plane then finds none up).
func (g *SDWAN) lbrValue(l *lbrClass) sdLBR {
	var v sdLBR
	if l == nil {
		return v
	}
	s := slots(l.weights, func(w int) bool { return g.wans[w].meets(l.SLA) })
	if s == nil {
		s = slots(l.weights, func(w int) bool { return g.wans[w].meets(nil) })
	}
	if s == nil {
		s = slots(l.weights, func(int) bool { return true })
	}
	v.Nslots = uint32(len(s))
	copy(v.WAN[:], s)
	return v
}

// writeLBRs writes the classes whose slots changed. The caller holds mu.
func (g *SDWAN) writeLBRs() error {
	if g.lbrShadow == nil {
		g.lbrShadow = make([]sdLBR, sdClasses+1)
		for i := range g.lbrShadow {
			g.lbrShadow[i].Nslots = ^uint32(0) // unwritten
		}
	}
	var keys []uint32
	var vals []sdLBR
	for cls := 0; cls <= sdClasses; cls++ {
		v := g.lbrValue(g.lbrs[cls])
		if v != g.lbrShadow[cls] {
			keys = append(keys, uint32(cls))
			vals = append(vals, v)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	if _, err := g.tables.m["lbrs"].BatchUpdate(keys, vals, &ebpf.BatchOptions{}); err != nil {
		return fmt.Errorf("write LBRs: %w", err)
	}
	for i, k := range keys {
		g.lbrShadow[k] = vals[i]
	}
	return nil
}

// ruleChange is a validated request: what create, update and delete carry.
type ruleChange struct {
	op     string // create, update, delete
	rules  []Rule
	delete []uint32
}

// applyRules validates a change against the live set and installs the
// result as one new generation; on error nothing changes.
func (g *SDWAN) applyRules(ch ruleChange) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	next := map[uint32]*pdr{}
	for id, p := range g.rules {
		next[id] = p
	}
	for i, r := range ch.rules {
		_, exists := next[r.ID]
		switch {
		case ch.op == "create" && exists:
			return fmt.Errorf("%w: rule %d exists (use update)", errExists, r.ID)
		case ch.op == "update" && !exists:
			return fmt.Errorf("%w: no rule %d to update", errNotFound, r.ID)
		}
		p, err := parseRule(r, &g.cfg)
		if err != nil {
			return fmt.Errorf("%w: rules[%d] (id %d): %v", errInvalid, i, r.ID, err)
		}
		next[r.ID] = p
	}
	for _, id := range ch.delete {
		if _, ok := next[id]; !ok {
			return fmt.Errorf("%w: no rule %d to delete", errNotFound, id)
		}
		delete(next, id)
	}
	set := make([]*pdr, 0, len(next))
	for _, p := range next {
		set = append(set, p)
	}
	if err := checkRuleSet(set); err != nil {
		return fmt.Errorf("%w: %v", errInvalid, err)
	}
	if err := g.tables.install(set); err != nil {
		return err
	}
	g.rules = next
	return nil
}

// applyLBRs creates, updates or deletes class LBRs (delete: by class).
func (g *SDWAN) applyLBRs(op string, in []LBRConfig) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	next := map[int]*lbrClass{}
	for k, v := range g.lbrs {
		next[k] = v
	}
	for i, l := range in {
		p, err := parseLBR(l, &g.cfg)
		if op == "delete" && err != nil && len(l.Overlays) == 0 { // a delete names only the class
			l.Overlays = []Overlay{{WAN: g.cfg.WANs[0].Name, Weight: 1}}
			p, err = parseLBR(l, &g.cfg)
		}
		if err != nil {
			return fmt.Errorf("%w: lbr[%d]: %v", errInvalid, i, err)
		}
		_, exists := next[p.class]
		switch {
		case op == "create" && exists:
			return fmt.Errorf("%w: the LBR of class %d exists (use update)", errExists, p.class)
		case op != "create" && !exists:
			return fmt.Errorf("%w: no LBR of class %d", errNotFound, p.class)
		}
		if op == "delete" {
			delete(next, p.class)
		} else {
			next[p.class] = p
		}
	}
	old := g.lbrs
	g.lbrs = next
	if err := g.writeLBRs(); err != nil {
		g.lbrs = old
		return err
	}
	return nil
}

// LBRInfo is a class's LBR as GET /lbr shows it, with the WANs its new
// flows go to now.
type LBRInfo struct {
	LBRConfig
	Active map[string]int `json:"active"` // slots per WAN
}

func (g *SDWAN) routes() {
	r := g.base.Router
	r.HandleFunc("/rules", g.serveRules).Methods(http.MethodGet)
	r.HandleFunc("/lbr", g.serveLBR).Methods(http.MethodGet)
	r.HandleFunc("/wans", g.serveWANs).Methods(http.MethodGet)
	r.HandleFunc("/stats", g.serveStats).Methods(http.MethodGet)
}

func (g *SDWAN) serveRules(w http.ResponseWriter, _ *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	rs, err := g.ruleList()
	if err != nil {
		module.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	module.WriteJSON(w, http.StatusOK, rs)
}

func (g *SDWAN) serveLBR(w http.ResponseWriter, _ *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := []LBRInfo{}
	for cls := 0; cls <= sdClasses; cls++ {
		l := g.lbrs[cls]
		if l == nil {
			continue
		}
		i := LBRInfo{LBRConfig: l.LBRConfig, Active: map[string]int{}}
		v := g.lbrShadow[cls]
		for _, wan := range v.WAN[:v.Nslots] {
			i.Active[g.cfg.WANs[wan].Name]++
		}
		out = append(out, i)
	}
	module.WriteJSON(w, http.StatusOK, out)
}

func (g *SDWAN) serveWANs(w http.ResponseWriter, _ *http.Request) {
	out, err := g.wanInfos()
	if err != nil {
		module.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	module.WriteJSON(w, http.StatusOK, out)
}

// wanInfos is every WAN's health and traffic.
func (g *SDWAN) wanInfos() ([]WANInfo, error) {
	out := make([]WANInfo, 0, len(g.wans))
	for i, ws := range g.wans {
		info := ws.info()
		var perCPU []sdWANStat
		if err := g.tables.m["wanstats"].Lookup(uint32(i), &perCPU); err != nil {
			return nil, fmt.Errorf("read WAN stats: %w", err)
		}
		for _, s := range perCPU {
			info.TxPackets += s.TxPackets
			info.TxBytes += s.TxBytes
			info.RxPackets += s.RxPackets
			info.RxBytes += s.RxBytes
		}
		out = append(out, info)
	}
	return out, nil
}

// counters sums the data plane's counters by reason.
func (g *SDWAN) counters() (map[string]uint64, error) {
	out := map[string]uint64{}
	for i, name := range statNames {
		var perCPU []uint64
		if err := g.tables.m["stats"].Lookup(uint32(i), &perCPU); err != nil {
			return nil, fmt.Errorf("read stats: %w", err)
		}
		for _, v := range perCPU {
			out[name] += v
		}
	}
	return out, nil
}

func (g *SDWAN) serveStats(w http.ResponseWriter, _ *http.Request) {
	c, err := g.counters()
	if err == nil {
		var wans []WANInfo
		if wans, err = g.wanInfos(); err == nil {
			module.WriteJSON(w, http.StatusOK, map[string]any{"counters": c, "wans": wans})
			return
		}
	}
	module.WriteError(w, http.StatusInternalServerError, err)
}
