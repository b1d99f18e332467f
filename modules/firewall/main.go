// Command firewall is the control plane of the firewall module (a Go plugin):
// ordered allow/deny rules on prefixes, protocols, port ranges and direction,
// replies to allowed flows let through, per-rule hits, managed over
// /ebpf/{id}/rules and /ebpf/{id}/stats.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Config is the instance's configuration; every key is optional.
type Config struct {
	DefaultPolicy string `json:"defaultPolicy"` // allow (default) or deny
	Stateful      *bool  `json:"stateful"`      // default true
	Rules         []Rule `json:"rules"`
	MaxRules      int    `json:"maxRules"`      // default 1024, at most 2048
	MaxFlows      int    `json:"maxFlows"`      // stateful table size, default 65536
	FlowTimeout   int    `json:"flowTimeout"`   // seconds without traffic before a flow is forgotten, default 120
	MaxInterfaces int    `json:"maxInterfaces"` // default 512
}

func parseConfig(raw json.RawMessage) (Config, error) {
	c := Config{DefaultPolicy: "allow", MaxRules: 1024, MaxFlows: 65536, FlowTimeout: 120, MaxInterfaces: 512}
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &c); err != nil {
			return c, fmt.Errorf("%w: %v", module.ErrInvalidConfig, err)
		}
	}
	if c.Stateful == nil {
		t := true
		c.Stateful = &t
	}
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: %s", module.ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.DefaultPolicy != "allow" && c.DefaultPolicy != "deny":
		return bad("defaultPolicy %q must be allow or deny", c.DefaultPolicy)
	case c.MaxRules < 1 || c.MaxRules > fwMaxRules:
		return bad("maxRules %d must be within 1-%d", c.MaxRules, fwMaxRules)
	case c.MaxFlows < 1 || c.MaxFlows > 1<<24:
		return bad("maxFlows %d must be within 1-%d", c.MaxFlows, 1<<24)
	case c.FlowTimeout < 1:
		return bad("flowTimeout %d must be at least 1 second", c.FlowTimeout)
	case c.MaxInterfaces < 1 || c.MaxInterfaces > 1<<16:
		return bad("maxInterfaces %d must be within 1-%d", c.MaxInterfaces, 1<<16)
	}
	return c, nil
}

// MapSizes sets the load-time sizes of the maps from the config.
func MapSizes(raw json.RawMessage) (map[string]uint32, error) {
	c, err := parseConfig(raw)
	if err != nil {
		return nil, err
	}
	lpm := uint32(2 * (c.MaxRules + 1)) // two generations of at most one prefix per rule plus /0
	return map[string]uint32{"src4": lpm, "dst4": lpm, "src6": lpm, "dst6": lpm,
		"flows": uint32(c.MaxFlows), "stats": uint32(2 * c.MaxInterfaces)}, nil
}

// Firewall is one instance.
type Firewall struct {
	mu     sync.Mutex
	cfg    Config
	rules  []rule // the active set, in order of addition
	seq    int
	nextID int
	gens   *generations
	ifaces module.Interfaces
	base   module.Base
}

// New validates the config, installs its rules and registers the routes.
func New(base module.Base) (module.Module, error) {
	c, err := parseConfig(base.Config)
	if err != nil {
		return nil, err
	}
	f := &Firewall{cfg: c, base: base}
	rs, err := ruleSet(c.Rules, c.MaxRules, "rules", f.newID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", module.ErrInvalidConfig, err)
	}
	if base.Log == nil {
		base.Log = logrus.StandardLogger()
		f.base.Log = base.Log
	}
	st := fwState{FlowTimeout: uint64(time.Duration(c.FlowTimeout) * time.Second)}
	if c.DefaultPolicy == "deny" {
		st.DefaultDeny = 1
	}
	if *c.Stateful {
		st.Stateful = 1
	}
	if f.gens, err = startGenerations(base, st); err != nil {
		return nil, err
	}
	restored := false
	if base.Readopted && len(base.State) > 0 {
		// The kernel still runs the rules of the earlier run: take them over.
		if err := f.restore(base.State); err != nil {
			base.Log.WithError(err).Warn("firewall: the saved rule set is unusable; installing the config's")
		} else {
			restored = true
		}
	}
	if !restored {
		if err := f.replace(rs); err != nil {
			return nil, err
		}
	}
	r := base.Router
	r.HandleFunc("/rules", f.serveList).Methods(http.MethodGet)
	r.HandleFunc("/rules", f.serveAdd).Methods(http.MethodPost)
	r.HandleFunc("/rules", f.serveReplace).Methods(http.MethodPut)
	r.HandleFunc("/rules/{ruleId}", f.serveDelete).Methods(http.MethodDelete)
	r.HandleFunc("/stats", f.serveStats).Methods(http.MethodGet)
	return f, nil
}

func (f *Firewall) newID() string {
	f.nextID++
	return fmt.Sprintf("r%d", f.nextID)
}

// replace makes rs the active set; the caller holds mu (or is New).
func (f *Firewall) replace(rs []rule) error {
	for i := range rs {
		f.seq++
		rs[i].seq = f.seq
	}
	sorted := sortRules(rs)
	if err := f.gens.install(compile(sorted)); err != nil {
		return err
	}
	f.rules = rs
	f.save()
	return nil
}

// list returns the active rules in match order with their hits.
func (f *Firewall) list() ([]Rule, error) {
	hits, err := f.gens.hits()
	if err != nil {
		return nil, err
	}
	out := []Rule{}
	for _, r := range sortRules(f.rules) {
		rr := r.Rule
		rr.Hits = hits[r.ID]
		out = append(out, rr)
	}
	return out, nil
}

// Attach starts reporting an interface's stats.
func (f *Firewall) Attach(a module.Attachment) error {
	f.ifaces.Add(a)
	return nil
}

// Detach forgets an interface: its stats and its flows.
func (f *Firewall) Detach(a module.Attachment) error {
	f.ifaces.Remove(a)
	f.mu.Lock()
	defer f.mu.Unlock()
	idx := uint32(a.Interface.Ifindex)
	var errs []error
	for dir := uint32(0); dir < 2; dir++ {
		if err := f.gens.m["stats"].Delete(fwStatKey{Ifindex: idx, Dir: dir}); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	var k fwFlow
	var stale []fwFlow
	it := f.gens.m["flows"].Iterate()
	var v fwSeen
	for it.Next(&k, &v) {
		if k.Ifindex == idx {
			stale = append(stale, k)
		}
	}
	for _, k := range stale {
		_ = f.gens.m["flows"].Delete(k)
	}
	return errors.Join(append(errs, it.Err())...)
}

// Close has nothing to release: the manager closes the maps.
func (f *Firewall) Close() error { return nil }

func (f *Firewall) serveList(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs, err := f.list()
	if err != nil {
		module.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	module.WriteJSON(w, http.StatusOK, rs)
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20))
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			module.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body larger than %d bytes", tooLarge.Limit))
			return false
		}
		module.WriteError(w, http.StatusBadRequest, fmt.Errorf("malformed JSON: %v", err))
		return false
	}
	return true
}

func (f *Firewall) serveAdd(w http.ResponseWriter, r *http.Request) {
	var in Rule
	if !decode(w, r, &in) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	nr, err := validate(in, "")
	if err != nil {
		module.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if len(f.rules) >= f.cfg.MaxRules {
		module.WriteError(w, http.StatusConflict, fmt.Errorf("the rule set is full: %d rules (config maxRules)", f.cfg.MaxRules))
		return
	}
	taken := map[string]bool{}
	for _, x := range f.rules {
		taken[x.ID] = true
	}
	if nr.ID != "" && taken[nr.ID] {
		module.WriteError(w, http.StatusConflict, fmt.Errorf("id: rule %q exists", nr.ID))
		return
	}
	for nr.ID == "" || taken[nr.ID] {
		nr.ID = f.newID()
	}
	next := append(append([]rule(nil), f.rules...), nr)
	if err := f.replace(next); err != nil {
		module.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	module.WriteJSON(w, http.StatusOK, nr.Rule)
}

func (f *Firewall) serveReplace(w http.ResponseWriter, r *http.Request) {
	var in []Rule
	if !decode(w, r, &in) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rs, err := ruleSet(in, f.cfg.MaxRules, "rules", f.newID)
	if err != nil {
		module.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if err := f.replace(rs); err != nil {
		module.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	out, err := f.list()
	if err != nil {
		module.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	module.WriteJSON(w, http.StatusOK, out)
}

func (f *Firewall) serveDelete(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["ruleId"]
	f.mu.Lock()
	defer f.mu.Unlock()
	next := make([]rule, 0, len(f.rules))
	for _, x := range f.rules {
		if x.ID != id {
			next = append(next, x)
		}
	}
	if len(next) == len(f.rules) {
		module.WriteError(w, http.StatusNotFound, fmt.Errorf("no rule %q", id))
		return
	}
	if err := f.replace(next); err != nil {
		module.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	module.WriteJSON(w, http.StatusOK, map[string]string{"id": id, "state": "deleted"})
}

// Verdicts counts allowed and denied packets of one direction.
type Verdicts struct {
	Allowed uint64 `json:"allowed"`
	Denied  uint64 `json:"denied"`
}

// dirHooks maps the data plane's direction index (FW_DIR_*) to the host
// veth hook that carries it.
var dirHooks = [2]module.Hook{module.HookEgress, module.HookIngress}

func (f *Firewall) serveStats(w http.ResponseWriter, _ *http.Request) {
	out, err := f.verdicts()
	if err != nil {
		module.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	module.WriteJSON(w, http.StatusOK, out)
}

var (
	_ module.NewFunc      = New
	_ module.MapSizesFunc = MapSizes
)

func main() {}
