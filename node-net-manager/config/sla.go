package config

import (
	"fmt"
	"regexp"
	"sort"
)

// SLA is the operator's policy for a deploy's ebpfModules (a tenant's SLA):
// the modules a tenant may ask for, the config keys of each that only the
// operator sets, and what one service's SLA modules may use together. No
// modules (the default) refuses every SLA module.
type SLA struct {
	Modules      map[string]SLAModule `json:"modules"`
	MaxInstances int                  `json:"maxInstances"` // SLA module instances per service
	MaxMapBytes  uint64               `json:"maxMapBytes"`  // their map memory together, per service
}

// SLAModule is what the policy says of one module tenants may ask for.
type SLAModule struct {
	ForbiddenKeys []string `json:"forbiddenKeys"` // top-level config keys tenants may not set
}

// Default limits of SLA modules per service.
const (
	DefaultSLAMaxInstances = 4
	DefaultSLAMaxMapBytes  = 16 << 20
	maxSLAInstances        = 1000
)

var slaModuleRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// validate checks the policy; the error names the key under sla.
func (s SLA) validate() error {
	names := make([]string, 0, len(s.Modules))
	for name := range s.Modules {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !slaModuleRE.MatchString(name) {
			return fmt.Errorf("sla.modules: %q is not a module name ([a-z0-9][a-z0-9_-]*, at most 64 bytes)", name)
		}
		seen := map[string]bool{}
		for i, k := range s.Modules[name].ForbiddenKeys {
			switch {
			case k == "":
				return fmt.Errorf("sla.modules.%s.forbiddenKeys[%d]: empty", name, i)
			case seen[k]:
				return fmt.Errorf("sla.modules.%s.forbiddenKeys[%d]: %q is listed twice", name, i, k)
			}
			seen[k] = true
		}
	}
	if s.MaxInstances < 1 || s.MaxInstances > maxSLAInstances {
		return fmt.Errorf("sla.maxInstances %d: must be within 1-%d", s.MaxInstances, maxSLAInstances)
	}
	if s.MaxMapBytes == 0 {
		return fmt.Errorf("sla.maxMapBytes 0: must be at least 1 (bytes of map memory per service)")
	}
	return nil
}
