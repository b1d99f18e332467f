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
// that this kernel can run.
func (m *Manager) AcceptModules(mods []events.Module) error {
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
// to that service) and counts the service as a user; on error it undoes what
// it did. The caller holds mu.
func (m *Manager) slaAcquire(s events.Service) ([]*instance, error) {
	var got []*instance
	for _, md := range s.Modules {
		key := slaKey(s.ServiceName, md)
		in := m.sla[key]
		if in == nil {
			var err error
			in, err = m.load(LoadRequest{Name: md.Name, Config: md.Config, Services: []string{s.ServiceName}})
			if err != nil {
				m.slaRelease(got)
				return nil, fmt.Errorf("ebpfModules %s: %w", md.Name, err)
			}
			in.slaKey = key
			m.sla[key] = in
		}
		in.refs++
		got = append(got, in)
	}
	return got, nil
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
