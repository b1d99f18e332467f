package ebpfmanager

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/events"
)

// SLAPolicy is the operator's rule for what a deploy's ebpfModules (a
// tenant's SLA) may ask for: the config's sla key. The zero policy allows
// no module.
type SLAPolicy struct {
	// Modules are the modules a tenant may ask for, by name.
	Modules map[string]SLAModule
	// MaxInstances caps the SLA instances one service has (every deployed
	// instance of the service shares them); MaxMapBytes the memory of their
	// maps together (mapBytes of each, with its config's MapSizes).
	MaxInstances int
	MaxMapBytes  uint64
}

// SLAModule is what the policy says of one module a tenant may ask for.
type SLAModule struct {
	// ForbiddenKeys are top-level config keys only the operator may set.
	ForbiddenKeys []string
}

// slaRefused is the class of every policy refusal: a valid request this
// node will not honour (422).
var slaRefused = errdefs.ErrUnprocessable

// permits refuses a module the policy does not allow a tenant, or a config
// that sets a key the policy keeps for the operator. md.Config is a JSON
// object or empty (normaliseConfig ran).
func (p SLAPolicy) permits(md events.Module) error {
	mp, ok := p.Modules[md.Name]
	if !ok {
		return fmt.Errorf("%w: module %q is not allowed for tenants (sla.modules)", slaRefused, md.Name)
	}
	var cfg map[string]json.RawMessage
	_ = json.Unmarshal(md.Config, &cfg)
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if slices.Contains(mp.ForbiddenKeys, k) {
			return fmt.Errorf("%w: config key %q of module %q is the operator's (sla.modules.%s.forbiddenKeys)", slaRefused, k, md.Name, md.Name)
		}
	}
	return nil
}

// fitsInstances refuses n SLA instances for one service; who names what
// would have them ("service a.b.c.d", "this deploy").
func (p SLAPolicy) fitsInstances(who string, n int) error {
	if n > p.MaxInstances {
		return fmt.Errorf("%w: %s would run %d SLA module instances, over sla.maxInstances %d", slaRefused, who, n, p.MaxInstances)
	}
	return nil
}

// fitsMapBytes refuses a module instance whose maps (add bytes) would take
// a service's SLA instances (used bytes already) over the limit.
func (p SLAPolicy) fitsMapBytes(name string, used, add uint64) error {
	if used+add > p.MaxMapBytes {
		return fmt.Errorf("%w: module %q: map memory %d bytes (the service's SLA modules together) over sla.maxMapBytes %d",
			slaRefused, name, used+add, p.MaxMapBytes)
	}
	return nil
}
