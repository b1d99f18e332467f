package ebpfmanager

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Readopt takes back the instances of the declared state after a restart
// with persist, before the services are re-adopted: each data plane is
// loaded over its pinned maps, its control plane made anew with its saved
// state, and attached to its host interfaces, adopting the pinned links in
// place (no detach, no gap). Its service veths are adopted as the services'
// events arrive. An instance that cannot be taken back is listed as failed;
// its data path, pinned, runs on until it is deleted. Pins of instances the
// state does not declare (SLA instances, which deploys re-create) are
// removed. It returns how many instances run again.
func (m *Manager) Readopt() (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.opts.Store == nil {
		return 0, nil
	}
	decl, err := m.opts.Store.Load()
	if err != nil {
		return 0, err
	}
	sortDeclared(decl)
	m.readopting = true
	known := map[string]bool{}
	running := 0
	for _, d := range decl {
		known[d.ID] = true
		in := m.readoptOne(d)
		m.insts[in.id] = in
		m.stateMu.Lock()
		m.declared[d.ID] = d
		m.stateMu.Unlock()
		if in.state == StateRunning {
			running++
		}
	}
	return running, m.removeUndeclaredPins(known)
}

// readoptOne re-creates one declared instance; the caller holds mu.
func (m *Manager) readoptOne(d Declared) *instance {
	if n, err := strconv.Atoi(d.ID); err == nil && n > m.nextID {
		m.nextID = n
	}
	m.seq = max(m.seq, d.Seq)
	in := &instance{id: d.ID, name: d.Name, rank: rank{priority: d.Priority, seq: d.Seq}, tie: d.Tie, config: d.Config,
		state: StateRunning, created: d.Created, atts: map[string]*attachment{}, readopted: true,
		pinDir: filepath.Join(m.opts.PinDir, d.ID)}
	log := m.opts.Log.WithFields(logrus.Fields{"id": d.ID, "module": d.Name})
	sc, err := newScope(d.Services, d.Interfaces)
	if err == nil {
		in.scope = sc
		var so startOptions
		if so.newFn, so.sizesFn, so.obj, err = m.openModule(d.Name); err == nil {
			so.reuse, so.state = true, d.State
			err = m.start(in, so)
		}
	}
	if err != nil {
		in.fail(fmt.Sprintf("not taken back after the restart: %v", err))
		log.WithError(err).Error("module instance not taken back; its pinned data path runs on until it is deleted")
		return in
	}
	log.WithField("attachments", len(in.atts)).Info("module instance taken back")
	return in
}

// removeUndeclaredPins removes the pin directories no declared instance owns.
func (m *Manager) removeUndeclaredPins(known map[string]bool) error {
	dirs, err := m.opts.Kernel.Pins(m.opts.PinDir)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range dirs {
		if known[id] {
			continue
		}
		m.opts.Log.WithField("id", id).Warn("removing the pins of an instance the declared state does not know")
		errs = append(errs, m.removePinDir(filepath.Join(m.opts.PinDir, id)))
	}
	return errors.Join(errs...)
}

// removePinDir unpins everything under an instance's pin directory.
func (m *Manager) removePinDir(dir string) error {
	var errs []error
	for _, sub := range []string{"links", "maps"} {
		names, err := m.opts.Kernel.Pins(filepath.Join(dir, sub))
		errs = append(errs, err)
		for _, n := range names {
			errs = append(errs, m.opts.Kernel.Unpin(filepath.Join(dir, sub, n)))
		}
		errs = append(errs, m.opts.Kernel.Unpin(filepath.Join(dir, sub)))
	}
	return errors.Join(append(errs, m.opts.Kernel.Unpin(dir))...)
}

// Reconcile runs once the services are re-adopted: every pinned attachment
// of a re-adopted instance that no attachment took over (its interface went
// away while the daemon was down) is removed, and the drift recorded in the
// instance (GET /ebpf/{id}) and the log. It returns the drift.
func (m *Manager) Reconcile() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.readopting = false
	var all []string
	for _, in := range m.sorted() {
		if !in.readopted || in.state != StateRunning {
			continue
		}
		dir := filepath.Join(in.pinDir, "links")
		pinned, err := m.opts.Kernel.Pins(dir)
		if err != nil {
			in.drift = append(in.drift, err.Error())
			continue
		}
		var adopted []string
		for name, att := range in.atts {
			for h := range att.links {
				adopted = append(adopted, linkPinName(name, h))
			}
		}
		for _, p := range strayPins(pinned, adopted) {
			msg := fmt.Sprintf("removed the attachment %s: its interface is gone", p)
			if err := m.opts.Kernel.Unpin(filepath.Join(dir, p)); err != nil {
				msg = fmt.Sprintf("could not remove the stray attachment %s: %v", p, err)
			}
			in.drift = append(in.drift, msg)
		}
		for _, d := range in.drift {
			m.opts.Log.WithFields(logrus.Fields{"id": in.id, "module": in.name}).Warn("drift after the restart: " + d)
			all = append(all, in.id+": "+d)
		}
	}
	for _, d := range m.foreignPrograms() {
		m.opts.Log.Warn("drift after the restart: " + d)
		all = append(all, d)
	}
	sort.Strings(all)
	return all
}

// foreignPrograms compares the kernel's view with the manager's: programs
// on the hooks of the interfaces it attaches to that no instance of it runs
// (attached by hand, or by another tool). They are not this daemon's to
// remove; each is reported. The caller holds mu.
func (m *Manager) foreignPrograms() []string {
	owned := map[uint32]bool{}
	ifaces := map[string]int{}
	for _, in := range m.insts {
		for name, att := range in.atts {
			ifaces[name] = att.iface.Ifindex
			for h := range att.links {
				if id, ok := in.dp.ProgramID(h); ok {
					owned[id] = true
				}
			}
		}
	}
	var out []string
	for name, ifindex := range ifaces {
		for _, h := range module.Hooks {
			chain, _, err := m.opts.Kernel.Chain(ifindex, h)
			if err != nil {
				continue
			}
			for _, id := range foreign(chain, owned) {
				out = append(out, fmt.Sprintf("program %d on %s %s is not this daemon's (left alone)", id, name, h))
			}
		}
	}
	return out
}

// foreign are the programs of a chain not in owned. It is pure.
func foreign(chain []uint32, owned map[uint32]bool) []uint32 {
	var out []uint32
	for _, id := range chain {
		if !owned[id] {
			out = append(out, id)
		}
	}
	return out
}

func linkPinName(iface string, h module.Hook) string { return fmt.Sprintf("%s_%s", iface, h) }

// Release lets go of every instance for a shutdown with persist: control
// planes closed, links and maps left pinned and attached, the declared
// state kept, for the next start's Readopt.
func (m *Manager) Release() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, in := range m.sorted() {
		errs = append(errs, m.release(in))
	}
	m.insts, m.sla = map[string]*instance{}, map[string]*instance{}
	return errors.Join(errs...)
}

// release closes an instance's control plane and lets go of its links and
// data plane, leaving them pinned.
func (m *Manager) release(in *instance) error {
	var errs []error
	if in.mod != nil {
		if err := m.guard(in, "Close", in.mod.Close); err != nil {
			m.opts.Log.WithError(err).WithFields(logrus.Fields{"id": in.id, "module": in.name}).Warn("module Close failed")
		}
		in.mod = nil
	}
	for name, att := range in.atts {
		for _, l := range att.links {
			errs = append(errs, l.Release())
		}
		delete(in.atts, name)
	}
	if in.dp != nil {
		errs = append(errs, in.dp.Release())
	}
	return errors.Join(errs...)
}
