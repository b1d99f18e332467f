package ebpfmanager

import (
	"net/http"

	"path/filepath"
	"slices"
	"sort"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/httpjson"
)

// Doctor gathers what the manager holds, the declared state, the pins and
// the kernel's chains and features, and diagnoses them (Diagnose).
func (m *Manager) Doctor() Report {
	o, modules := m.observe()
	o.Features = m.observeFeatures(modules)
	return Diagnose(o)
}

// observe collects everything but the features under mu (so no instance
// changes meanwhile); it returns the modules to probe features for.
func (m *Manager) observe() (Observed, []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := Observed{Mode: m.opts.Kernel.Mode(), PinDir: m.opts.PinDir, Dirs: map[string]ObservedPinDir{}}
	o.Declared, o.HasStore = m.declaredState()
	var modules []string
	hooks := map[string]int{} // interfaces we chain on, by name
	for _, in := range m.sorted() {
		oi := observeInstance(in, m.targets(in))
		o.Instances = append(o.Instances, oi)
		if !slices.Contains(modules, in.name) {
			modules = append(modules, in.name)
		}
		for name, att := range in.atts {
			hooks[name] = att.iface.Ifindex
		}
		o.Dirs[in.id] = m.observePinDir(in.pinDir)
	}
	o.Pins, _ = m.opts.Kernel.Pins(m.opts.PinDir)
	o.Hooks = m.observeHooks(hooks, o.Instances)
	return o, modules
}

// declaredState is what a restart would take back: the Store's, else the
// manager's own list. The caller holds mu.
func (m *Manager) declaredState() ([]Declared, bool) {
	if m.opts.Store == nil {
		return nil, false
	}
	if ds, err := m.opts.Store.Load(); err == nil {
		return ds, true
	}
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	out := make([]Declared, 0, len(m.declared))
	for _, d := range m.declared {
		out = append(out, d)
	}
	sortDeclared(out)
	return out, true
}

func observeInstance(in *instance, targets []module.Interface) ObservedInstance {
	oi := ObservedInstance{ID: in.id, Name: in.name, State: in.state, Failure: in.failure, SLA: in.slaKey != ""}
	if in.dp != nil {
		oi.Programs = map[module.Hook]uint32{}
		for _, h := range module.Hooks {
			if id, ok := in.dp.ProgramID(h); ok {
				oi.Programs[h] = id
			}
		}
		if sdk := in.dp.SDK(); sdk != nil {
			for name := range sdk.Maps {
				oi.Maps = append(oi.Maps, name)
			}
			sort.Strings(oi.Maps)
		}
	}
	for _, t := range targets {
		oi.Targets = append(oi.Targets, t.Name)
	}
	for name := range in.atts {
		oi.Attached = append(oi.Attached, name)
	}
	sort.Strings(oi.Attached)
	return oi
}

// observePinDir lists an instance's pin directory: links/, maps/ and
// anything else.
func (m *Manager) observePinDir(dir string) ObservedPinDir {
	var d ObservedPinDir
	top, err := m.opts.Kernel.Pins(dir)
	if err != nil {
		d.Err = err.Error()
		return d
	}
	for _, n := range top {
		if n != "links" && n != "maps" {
			d.Other = append(d.Other, n)
		}
	}
	if d.Links, err = m.opts.Kernel.Pins(filepath.Join(dir, "links")); err == nil {
		d.Maps, err = m.opts.Kernel.Pins(filepath.Join(dir, "maps"))
	}
	if err != nil {
		d.Err = err.Error()
	}
	return d
}

// observeHooks reads the chain of every hook we have a program for on the
// interfaces we are attached to, describing the programs that are not ours.
func (m *Manager) observeHooks(ifaces map[string]int, insts []ObservedInstance) []ObservedHook {
	owned, hooks := map[uint32]bool{}, map[module.Hook]bool{}
	for _, in := range insts {
		for h, id := range in.Programs {
			owned[id], hooks[h] = true, true
		}
	}
	names := make([]string, 0, len(ifaces))
	for n := range ifaces {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []ObservedHook
	for _, n := range names {
		for _, h := range module.Hooks {
			if hooks[h] {
				out = append(out, m.observeHook(n, ifaces[n], h, owned))
			}
		}
	}
	return out
}

// observeHook reads one hook's chain and describes its foreign programs
// (one that is gone meanwhile is described by its ID alone).
func (m *Manager) observeHook(name string, ifindex int, h module.Hook, owned map[uint32]bool) ObservedHook {
	oh := ObservedHook{Interface: name, Ifindex: ifindex, Hook: h, Programs: map[uint32]ProgramInfo{}}
	chain, _, err := m.opts.Kernel.Chain(ifindex, h)
	if err != nil {
		oh.Err = err.Error()
		return oh
	}
	oh.Chain = chain
	for _, id := range foreign(chain, owned) {
		pi, err := m.opts.Kernel.ProgramInfo(id)
		if err != nil {
			pi = ProgramInfo{ID: id}
		}
		oh.Programs[id] = pi
	}
	return oh
}

// observeFeatures asks the kernel's probes about each module's needs.
func (m *Manager) observeFeatures(modules []string) []ObservedFeatures {
	sort.Strings(modules)
	var out []ObservedFeatures
	for _, name := range modules {
		f := ObservedFeatures{Module: name}
		needs, err := m.opts.Kernel.Needs(filepath.Join(m.opts.ModulesDir, name, name+".o"))
		if err != nil {
			f.Err = err.Error()
			out = append(out, f)
			continue
		}
		probes := m.opts.Kernel.Probe(needs)
		f.Missing, f.Degraded = Missing(needs, probes), Degraded(needs, probes)
		for i, p := range probes {
			if p.Err != nil && i < len(needs) && !slices.Contains(f.Inconclusive, needs[i].Feature) {
				f.Inconclusive = append(f.Inconclusive, needs[i].Feature)
			}
		}
		if len(f.Missing)+len(f.Degraded)+len(f.Inconclusive) > 0 {
			out = append(out, f)
		}
	}
	return out
}

// serveDoctor answers GET /ebpf/doctor: the Report, 200 whatever its
// health (the caller decides what an unhealthy node means).
func (m *Manager) serveDoctor(w http.ResponseWriter, _ *http.Request) {
	httpjson.WriteJSON(w, http.StatusOK, m.Doctor())
}
