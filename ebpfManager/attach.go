package ebpfmanager

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/events"
)

// attach puts an instance's programs on an interface, each hook in its chain
// place, then tells the control plane; on error nothing stays attached.
func (m *Manager) attach(in *instance, iface module.Interface) (err error) {
	if _, ok := in.atts[iface.Name]; ok {
		return nil
	}
	if in.slaService != "" && (iface.Service == nil || iface.Service.Name != in.slaService) {
		// The scope never selects it; this is the last word on a tenant's module.
		return fmt.Errorf("%w: SLA instance %s serves %s alone, not %s", errdefs.ErrConflict, in.id, in.slaService, iface.Name)
	}
	if iface.Ifindex == 0 {
		if iface.Ifindex, err = m.opts.Kernel.Ifindex(iface.Name); err != nil {
			return fmt.Errorf("%w: interface %s: %v", errdefs.ErrInvalid, iface.Name, err)
		}
	}
	att := &attachment{iface: iface, links: map[module.Hook]Link{}}
	defer func() {
		if err != nil {
			for _, l := range att.links {
				_ = l.Close()
			}
		}
	}()
	// Hooks are attached one after the other on the calling thread: TCX resolves
	// the ifindex in the calling thread's network namespace, and attaches are
	// serialised by the kernel anyway (each waits for an RCU grace period).
	for _, h := range module.Hooks {
		if _, ok := in.dp.ProgramID(h); !ok {
			continue
		}
		l, err := m.attachHook(in, iface, h)
		if err != nil {
			return fmt.Errorf("attach %s to %s %s: %w", in.name, iface.Name, h, err)
		}
		if in.readopted && m.readopting && !l.Adopted() {
			in.drift = append(in.drift, fmt.Sprintf("attached to %s %s again: its attachment was missing", iface.Name, h))
		}
		att.links[h] = l
	}
	a := module.Attachment{Interface: iface, Hooks: att.hooks()}
	if err := m.guard(in, "Attach", func() error { return in.mod.Attach(a) }); err != nil {
		return fmt.Errorf("%w: module %s on %s: %v", errdefs.ErrUnprocessable, in.name, iface.Name, err)
	}
	in.atts[iface.Name] = att
	return nil
}

// attachHook attaches one program in its place (adopting an earlier run's
// attachment for a re-adopted instance).
func (m *Manager) attachHook(in *instance, iface module.Interface, h module.Hook) (Link, error) {
	return m.attachAt(in, iface, h, filepath.Join(in.pinDir, "links", linkPinName(iface.Name, h)), in.readopted)
}

// attachAt attaches one program in its place, pinned at pin, re-reading the
// chain when it changed under us; with adopt, a link already pinned there
// gets the program instead.
func (m *Manager) attachAt(in *instance, iface module.Interface, h module.Hook, pin string, adopt bool) (Link, error) {
	req := AttachRequest{DataPlane: in.dp, Hook: h, Ifindex: iface.Ifindex, Ifname: iface.Name, PinPath: pin, Adopt: adopt}
	for try := 0; ; try++ {
		place, err := m.place(in, iface.Ifindex, h)
		if err != nil {
			return nil, err
		}
		req.Place = place
		l, err := m.opts.Kernel.Attach(req)
		if errors.Is(err, ErrChainChanged) && try < 3 {
			continue
		}
		return l, err
	}
}

// place decides where in's program for h goes on an interface.
func (m *Manager) place(in *instance, ifindex int, h module.Hook) (Place, error) {
	if m.opts.Kernel.Mode() == ModeLegacy {
		prio, err := legacyPriority(in.rank.priority, in.tie)
		return Place{Priority: prio}, err
	}
	chain, rev, err := m.opts.Kernel.Chain(ifindex, h)
	if err != nil {
		return Place{}, fmt.Errorf("read chain: %w", err)
	}
	owned := map[uint32]rank{}
	for _, other := range m.insts {
		if id, ok := other.dp.ProgramID(h); ok {
			owned[id] = other.rank
		}
	}
	return placeTCX(chain, owned, in.rank, rev), nil
}

// detach removes an instance's programs from one interface and tells the
// control plane.
func (m *Manager) detach(in *instance, name string) error {
	att := in.atts[name]
	if att == nil {
		return nil
	}
	delete(in.atts, name)
	var errs []error
	for _, h := range module.Hooks {
		if l, ok := att.links[h]; ok {
			if err := l.Close(); err != nil {
				errs = append(errs, fmt.Errorf("detach %s from %s %s: %w", in.name, name, h, err))
			}
		}
	}
	if in.state == StateRunning {
		a := module.Attachment{Interface: att.iface, Hooks: att.hooks()}
		if err := m.guard(in, "Detach", func() error { return in.mod.Detach(a) }); err != nil {
			// The programs are gone either way; the control plane's complaint is news, not failure.
			m.opts.Log.WithError(err).WithFields(logrus.Fields{"id": in.id, "module": in.name, "interface": name}).Warn("module Detach failed")
		}
	}
	return errors.Join(errs...)
}

// HandleEvent follows the NetManager's services: a new service gets the
// instances its SLA asks for (created on first use) and every applicable
// running instance attached in chain order before its deploy returns; a
// removed one loses its attachments, and SLA instances go with their last
// service.
func (m *Manager) HandleEvent(_ context.Context, ev events.Event) (err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch ev.Type {
	case events.ServiceCreated:
		defer func() { m.count(OpServiceCreated, err) }()
	case events.ServiceRemoved:
		defer func() { m.count(OpServiceRemoved, err) }()
	}
	switch ev.Type {
	case events.ServiceCreated:
		sla, err := m.slaAcquire(ev.Service)
		if err != nil {
			return err
		}
		if err := m.serviceCreated(ev.Service); err != nil {
			return errors.Join(err, m.slaRelease(sla))
		}
		// It is deployed: loads from now on apply to it, listed yet or not.
		delete(m.removed, ev.Service.HostVeth)
		m.seq++
		m.live[ev.Service.HostVeth] = liveService{s: ev.Service, seq: m.seq}
		return nil
	case events.ServiceRemoved:
		m.removed[ev.Service.HostVeth] = true
		delete(m.live, ev.Service.HostVeth)
		var errs []error
		for _, in := range m.sorted() {
			errs = append(errs, m.detach(in, ev.Service.HostVeth))
		}
		errs = append(errs, m.slaRelease(m.slaOf(ev.Service)))
		return errors.Join(errs...)
	}
	return nil
}

func (m *Manager) serviceCreated(s events.Service) error {
	iface := serviceInterface(s)
	var done []*instance
	for _, in := range m.sorted() {
		if in.state != StateRunning || !in.scope.wantsService(s.ServiceName) {
			continue
		}
		if err := m.attach(in, iface); err != nil {
			for _, d := range done {
				_ = m.detach(d, iface.Name)
			}
			return err
		}
		done = append(done, in)
	}
	if len(done) > 0 {
		m.opts.Log.WithFields(logrus.Fields{"service": s.ServiceName, "veth": s.HostVeth, "modules": len(done)}).Debug("modules attached to new service")
	}
	return nil
}

// guard calls into a control plane; a panic is recovered, logged, and marks
// the instance failed.
func (m *Manager) guard(in *instance, what string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			in.fail(fmt.Sprintf("control plane panicked in %s: %v", what, r))
			m.opts.Log.WithFields(logrus.Fields{"id": in.id, "module": in.name, "call": what, "panic": r}).Error("module control plane panicked; instance marked failed")
			err = fmt.Errorf("%w: module %s (instance %s) panicked in %s: %v", errdefs.ErrUnprocessable, in.name, in.id, what, r)
		}
	}()
	return fn()
}
