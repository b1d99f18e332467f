package ebpfmanager

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// Declared is one module instance as the declared state keeps it: what a
// restart with persist re-creates.
type Declared struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Priority   int             `json:"priority"`
	Seq        uint64          `json:"seq"` // load order among equal priorities
	Tie        int             `json:"tie"`
	Config     json.RawMessage `json:"config"`
	Services   []string        `json:"services,omitempty"`
	Interfaces []string        `json:"interfaces,omitempty"`
	Created    time.Time       `json:"created"`
	// State is the module's own, from SaveState.
	State json.RawMessage `json:"state,omitempty"`
}

// Store keeps the declared instances across restarts. Save replaces what it
// holds, atomically.
type Store interface {
	Load() ([]Declared, error)
	Save([]Declared) error
}

// declare records a loaded instance in the declared state; the caller
// holds mu. SLA instances are not declared: deploys re-create them.
func (m *Manager) declare(in *instance, state json.RawMessage) error {
	if in.slaKey != "" {
		return nil
	}
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	if state == nil {
		state = m.pending[in.id] // saved from New, before the instance was declared
	}
	delete(m.pending, in.id)
	prev, had := m.declared[in.id]
	m.declared[in.id] = Declared{ID: in.id, Name: in.name, Priority: in.rank.priority, Seq: in.rank.seq, Tie: in.tie,
		Config: in.config, Services: in.scope.list(), Interfaces: in.scope.interfaces, Created: in.created, State: state}
	if err := m.saveLocked(); err != nil {
		if had {
			m.declared[in.id] = prev
		} else {
			delete(m.declared, in.id)
		}
		return err
	}
	return nil
}

// undeclare drops an instance from the declared state.
func (m *Manager) undeclare(id string) error {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	delete(m.pending, id)
	if _, ok := m.declared[id]; !ok {
		return nil
	}
	delete(m.declared, id)
	return m.saveLocked()
}

// stateSaver is an instance's module.Base.SaveState. It takes only
// stateMu, so a module may call it from its routes.
func (m *Manager) stateSaver(id string) func(json.RawMessage) error {
	return func(s json.RawMessage) error {
		if s != nil && !json.Valid(s) {
			return fmt.Errorf("save state of %s: not JSON", id)
		}
		m.stateMu.Lock()
		defer m.stateMu.Unlock()
		d, ok := m.declared[id]
		if !ok {
			m.pending[id] = append(json.RawMessage(nil), s...) // New, before declare (SLA ones stay pending)
			return nil
		}
		d.State = append(json.RawMessage(nil), s...)
		m.declared[id] = d
		return m.saveLocked()
	}
}

// saveLocked writes the declared instances in chain order; the caller
// holds stateMu.
func (m *Manager) saveLocked() error {
	if m.opts.Store == nil {
		return nil
	}
	out := make([]Declared, 0, len(m.declared))
	for _, d := range m.declared {
		out = append(out, d)
	}
	sortDeclared(out)
	if err := m.opts.Store.Save(out); err != nil {
		return fmt.Errorf("save the declared module instances: %w", err)
	}
	return nil
}

func sortDeclared(ds []Declared) {
	sort.Slice(ds, func(i, j int) bool {
		if ds[i].Priority != ds[j].Priority {
			return ds[i].Priority < ds[j].Priority
		}
		return ds[i].Seq < ds[j].Seq
	})
}

// strayPins are the pinned attachments of an instance (by pin name,
// "<interface>_<hook>") that no attachment of this run took over: their
// interface went away while the daemon was down. It is pure.
func strayPins(pinned, adopted []string) []string {
	keep := map[string]bool{}
	for _, a := range adopted {
		keep[a] = true
	}
	var out []string
	for _, p := range pinned {
		if !keep[p] {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}
