package main

import (
	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/node-net-manager/config"
)

// slaPolicy hands the config's sla key to the eBPF Manager.
func slaPolicy(c config.SLA) ebpfmanager.SLAPolicy {
	p := ebpfmanager.SLAPolicy{Modules: map[string]ebpfmanager.SLAModule{}, MaxInstances: c.MaxInstances, MaxMapBytes: c.MaxMapBytes}
	for name, m := range c.Modules {
		p.Modules[name] = ebpfmanager.SLAModule{ForbiddenKeys: append([]string(nil), m.ForbiddenKeys...)}
	}
	return p
}
