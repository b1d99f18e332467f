package ebpfmanager

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/events"
)

// AcceptModules checks a deploy request's ebpfModules before anything is
// made: names valid, modules installed, configs JSON objects, data planes
// that this kernel can run, and then the operator's SLA policy: modules it
// allows tenants, config keys it keeps, no more instances than it allows
// (counting this request alone; HandleEvent counts the service's others and
// the map memory).
func (m *Manager) AcceptModules(mods []events.Module) error {
	if err := m.acceptable(mods); err != nil {
		return err
	}
	keys := map[string]bool{}
	for i, md := range mods {
		if err := m.opts.SLA.permits(md); err != nil {
			return fmt.Errorf("ebpfModules[%d]: %w", i, err)
		}
		keys[slaKey("", md)] = true
	}
	if err := m.opts.SLA.fitsInstances("this deploy", len(keys)); err != nil {
		return fmt.Errorf("ebpfModules: %w", err)
	}
	return nil
}

// acceptable is what a node can run at all, whatever the policy says.
func (m *Manager) acceptable(mods []events.Module) error {
	for i, md := range mods {
		if err := ValidateModuleName(md.Name); err != nil {
			return fmt.Errorf("ebpfModules[%d]: %w", i, err)
		}
		if st, err := m.opts.Plugins.Stat(filepath.Join(m.opts.ModulesDir, md.Name)); err != nil || !st.IsDir() {
			return fmt.Errorf("%w: ebpfModules[%d]: module %q is not installed", errdefs.ErrNotFound, i, md.Name)
		}
		if _, err := normaliseConfig(md.Config); err != nil {
			return fmt.Errorf("ebpfModules[%d]: %w", i, err)
		}
		// A data plane the kernel cannot run is refused before the deploy
		// makes anything (a missing .o is the load's to report).
		obj := filepath.Join(m.opts.ModulesDir, md.Name, md.Name+".o")
		if _, err := m.opts.Plugins.Stat(obj); err == nil {
			if _, err := m.checkFeatures(md.Name, obj); err != nil {
				return fmt.Errorf("ebpfModules[%d]: %w", i, err)
			}
		}
	}
	return nil
}

// slaKey identifies an SLA instance: one module with one config for one
// service; every deployed instance of that service shares it.
func slaKey(service string, md events.Module) string {
	var cfg bytes.Buffer
	if len(md.Config) == 0 || json.Compact(&cfg, md.Config) != nil {
		cfg.WriteString("null")
	}
	return service + "\x00" + md.Name + "\x00" + cfg.String()
}

// slaAcquire makes sure the instances a service's SLA asks for exist (scoped
// to that service, at SLAPriority, within the operator's policy) and counts
// the service as a user; on error it undoes what it did. The caller holds mu.
func (m *Manager) slaAcquire(s events.Service) ([]*instance, error) {
	var got []*instance
	for i, md := range s.Modules {
		key := slaKey(s.ServiceName, md)
		in := m.sla[key]
		if in == nil {
			var err error
			if in, err = m.slaLoad(s.ServiceName, key, md); err != nil {
				m.slaRelease(got)
				return nil, fmt.Errorf("ebpfModules[%d] %s: %w", i, md.Name, err)
			}
			m.sla[key] = in
		}
		in.refs++
		got = append(got, in)
	}
	return got, nil
}

// slaLoad loads a new SLA instance for a service if the policy allows it:
// the module and its config, one more instance, and its map memory on top
// of the service's other SLA instances'. The caller holds mu.
func (m *Manager) slaLoad(service, key string, md events.Module) (*instance, error) {
	p := m.opts.SLA
	if err := p.permits(md); err != nil {
		return nil, err
	}
	var n int
	var used uint64
	for _, in := range m.sla {
		if in.slaService == service {
			n++
			used += in.mapBytes
		}
	}
	if err := p.fitsInstances("service "+service, n+1); err != nil {
		return nil, err
	}
	budget := func(b uint64) error { return p.fitsMapBytes(md.Name, used, b) }
	return m.load(LoadRequest{Name: md.Name, Config: md.Config, Services: []string{service}},
		&slaLoad{key: key, service: service, budget: budget})
}

// slaTie is the lowest legacy tie index no SLA instance of service has (SLA
// instances of other services are never on its interfaces). The caller
// holds mu.
func (m *Manager) slaTie(service string) int {
	used := map[int]bool{}
	for _, in := range m.insts {
		if in.slaService == service {
			used[in.tie] = true
		}
	}
	tie := 0
	for used[tie] {
		tie++
	}
	return tie
}

// slaRelease drops one use of each instance; an instance nobody uses any
// more is deleted. The caller holds mu.
func (m *Manager) slaRelease(ins []*instance) error {
	var errs []error
	for i := len(ins) - 1; i >= 0; i-- {
		in := ins[i]
		in.refs--
		if in.refs > 0 || m.insts[in.id] != in {
			continue
		}
		m.forget(in)
		errs = append(errs, m.stop(in))
		m.opts.Log.WithField("id", in.id).WithField("module", in.name).Info("SLA module deleted with its last service")
	}
	return errors.Join(errs...)
}

// slaOf returns the SLA instances a service uses; the caller holds mu.
func (m *Manager) slaOf(s events.Service) []*instance {
	var out []*instance
	for _, md := range s.Modules {
		if in := m.sla[slaKey(s.ServiceName, md)]; in != nil {
			out = append(out, in)
		}
	}
	return out
}
