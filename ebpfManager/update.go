package ebpfmanager

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// UpdateRequest is the body of PUT /ebpf/{id}: what changes; an absent key
// keeps its value. The module's files are read again either way, so a
// rebuilt module of the same name is picked up.
type UpdateRequest struct {
	Config   json.RawMessage `json:"config"`
	Priority *int            `json:"priority"`
}

// Update swaps an instance for a new version of itself, in place. The new
// data plane is loaded over the instance's maps, which carry their state
// across (a map the new object does not fit is a conflict: 409); its control
// plane is made with the new config (Readopted, over those maps); then every
// attachment is swapped: at the same priority the new program replaces the
// old in one step (TCX link update, legacy filter replace), so no packet is
// judged by neither version; at a new priority the new program is attached
// in its place before the old one goes. Any failure leaves the old version
// running as it was.
func (m *Manager) Update(id string, req UpdateRequest) (_ Info, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer func() { m.count(OpUpdate, err) }()
	old := m.insts[id]
	switch {
	case old == nil:
		return Info{}, fmt.Errorf("%w: no module instance %q", errdefs.ErrNotFound, id)
	case old.state != StateRunning:
		return Info{}, fmt.Errorf("%w: instance %s is %s: delete it and load it again", errdefs.ErrConflict, id, old.state)
	case old.slaKey != "":
		return Info{}, fmt.Errorf("%w: instance %s serves a deploy's SLA and follows it", errdefs.ErrConflict, id)
	}
	nu, so, err := m.successor(old, req)
	if err != nil {
		return Info{}, err
	}
	start := time.Now()
	if err := m.swap(old, nu, so); err != nil {
		return Info{}, fmt.Errorf("update instance %s: %w", id, err)
	}
	m.insts[id] = nu
	m.stateMu.Lock()
	state := m.declared[id].State // as the new control plane saved it, if it did
	m.stateMu.Unlock()
	if err := m.declare(nu, state); err != nil {
		m.opts.Log.WithError(err).WithField("id", id).Warn("the update runs, but a restart will not know it")
	}
	m.opts.Log.WithFields(logrus.Fields{"id": id, "module": nu.name, "priority": nu.rank.priority, "attachments": len(nu.atts),
		"took": time.Since(start)}).Info("module instance updated in place")
	return nu.info(m.opts.Kernel.Mode()), nil
}

// successor is the instance old becomes under req, not started yet.
func (m *Manager) successor(old *instance, req UpdateRequest) (*instance, startOptions, error) {
	var so startOptions
	cfg := old.config
	if req.Config != nil {
		var err error
		if cfg, err = normaliseConfig(req.Config); err != nil {
			return nil, so, err
		}
	}
	nu := &instance{id: old.id, name: old.name, rank: old.rank, tie: old.tie, config: cfg, scope: old.scope,
		state: StateRunning, created: old.created, atts: map[string]*attachment{}, pinDir: old.pinDir}
	if req.Priority != nil && *req.Priority != old.rank.priority {
		prio, err := m.priority(req.Priority)
		if err != nil {
			return nil, so, err
		}
		m.seq++
		nu.rank, nu.tie = rank{priority: prio, seq: m.seq}, m.tieFor(prio)
	}
	var err error
	if so.newFn, so.sizesFn, so.obj, err = m.openModule(old.name); err != nil {
		return nil, so, err
	}
	so.reuse = true
	if req.Config == nil {
		m.stateMu.Lock()
		so.state = m.declared[old.id].State // the same config: take over what runs
		m.stateMu.Unlock()
	}
	return nu, so, nil
}

// swap starts nu over old's maps and moves every attachment of old to it;
// on error old runs on untouched and nu is gone.
func (m *Manager) swap(old, nu *instance, so startOptions) (err error) {
	samePlace := nu.rank == old.rank
	var sizes map[string]uint32
	if so.sizesFn != nil {
		if err := m.guard(nu, "MapSizes", func() (err error) { sizes, err = so.sizesFn(nu.config); return }); err != nil {
			return moduleError(err)
		}
	}
	if nu.dp, err = m.opts.Kernel.Load(LoadOptions{Object: so.obj, PinDir: filepath.Join(nu.pinDir, "maps"), MapSizes: sizes, Reuse: true, Instance: nu.num()}); err != nil {
		return err
	}
	nu.router = newModuleRouter(nu.name)
	base := module.Base{ID: nu.id, Name: nu.name, Priority: nu.rank.priority, Config: nu.config, Router: nu.router,
		Log: m.opts.Log.WithFields(logrus.Fields{"module": nu.name, "id": nu.id}), Services: m.opts.Table,
		ServiceRanges: m.opts.ServiceRanges, DataPlane: nu.dp.SDK(), HostInterfaces: nu.scope.interfaces, Tunnel: m.opts.Tunnel,
		State: so.state, Readopted: true, SaveState: m.stateSaver(nu.id)}
	if err := m.guard(nu, "New", func() (err error) { nu.mod, err = so.newFn(base); return }); err != nil || nu.mod == nil {
		_ = nu.dp.Release() // the maps are old's
		if err == nil {
			err = fmt.Errorf("%w: New returned no module", errdefs.ErrUnprocessable)
		}
		return moduleError(err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, m.unswap(old, nu, samePlace))
		}
	}()
	for _, att := range old.sortedAtts() {
		if err := m.attachSuccessor(nu, att, samePlace); err != nil {
			return err
		}
	}
	// The swap is done: old lets go (its links at the same place were
	// replaced; at another place they are removed), and so does its data
	// plane, whose maps nu holds now.
	var errs []error
	if old.mod != nil {
		errs = append(errs, m.guard(old, "Close", old.mod.Close))
	}
	for _, att := range old.atts {
		for _, l := range att.links {
			if samePlace {
				errs = append(errs, l.Release())
			} else {
				errs = append(errs, l.Close())
			}
		}
	}
	if !samePlace {
		errs = append(errs, m.repinAll(nu))
	}
	errs = append(errs, old.dp.Release())
	if err := errors.Join(errs...); err != nil {
		m.opts.Log.WithError(err).WithField("id", old.id).Warn("letting go of the old version")
	}
	return nil
}

// attachSuccessor gives nu one of old's interfaces: in old's place, adopting
// its attachment; elsewhere, next to it (pinned beside it until the old one goes).
func (m *Manager) attachSuccessor(nu *instance, att *attachment, samePlace bool) error {
	na := &attachment{iface: att.iface, links: map[module.Hook]Link{}}
	nu.atts[att.iface.Name] = na
	for _, h := range module.Hooks {
		if _, ok := nu.dp.ProgramID(h); !ok {
			continue
		}
		pin := filepath.Join(nu.pinDir, "links", linkPinName(att.iface.Name, h))
		if !samePlace {
			pin += "_next" // bpffs names take no dot
		}
		l, err := m.attachAt(nu, att.iface, h, pin, samePlace)
		if err != nil {
			return fmt.Errorf("attach the new version to %s %s: %w", att.iface.Name, h, err)
		}
		na.links[h] = l
	}
	a := module.Attachment{Interface: att.iface, Hooks: na.hooks()}
	if err := m.guard(nu, "Attach", func() error { return nu.mod.Attach(a) }); err != nil {
		return fmt.Errorf("%w: module %s on %s: %v", errdefs.ErrUnprocessable, nu.name, att.iface.Name, err)
	}
	return nil
}

// repinAll moves nu's links from their "_next" pins to the instance's.
func (m *Manager) repinAll(nu *instance) error {
	var errs []error
	for name, na := range nu.atts {
		for h, l := range na.links {
			errs = append(errs, l.Repin(filepath.Join(nu.pinDir, "links", linkPinName(name, h))))
		}
	}
	return errors.Join(errs...)
}

// unswap undoes a swap that failed part way: old's program goes back into
// every link nu took over, nu's own links go, and nu closes.
func (m *Manager) unswap(old, nu *instance, samePlace bool) error {
	var errs []error
	for name, na := range nu.atts {
		for h, l := range na.links {
			if !samePlace {
				errs = append(errs, l.Close())
				continue
			}
			if !l.Adopted() {
				errs = append(errs, l.Close())
				continue
			}
			back, err := m.attachAt(old, na.iface, h, filepath.Join(old.pinDir, "links", linkPinName(name, h)), true)
			if err == nil {
				err = back.Release() // old's own link object still holds the attachment
			}
			errs = append(errs, err, l.Release())
		}
	}
	if nu.mod != nil {
		errs = append(errs, m.guard(nu, "Close", nu.mod.Close))
	}
	return errors.Join(append(errs, nu.dp.Release())...)
}
