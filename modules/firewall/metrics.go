package main

import (
	"fmt"
	"maps"
	"slices"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Metrics are the firewall's samples for GET /metrics: allowed and denied
// packets per interface and direction, and each active rule's hits.
func (f *Firewall) Metrics() ([]module.Metric, error) {
	vs, err := f.verdicts()
	if err != nil {
		return nil, err
	}
	var out []module.Metric
	for _, ifname := range slices.Sorted(maps.Keys(vs)) {
		for _, dir := range slices.Sorted(maps.Keys(vs[ifname])) {
			v := vs[ifname][dir]
			for verdict, n := range map[string]uint64{"allowed": v.Allowed, "denied": v.Denied} {
				out = append(out, module.Metric{Name: "packets_total", Help: "Packets the firewall judged, by interface, direction and verdict.",
					Labels: map[string]string{"interface": ifname, "direction": dir, "verdict": verdict}, Value: float64(n)})
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rules, err := f.list()
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		out = append(out, module.Metric{Name: "rule_hits_total", Help: "Packets each active rule decided, by rule id.",
			Labels: map[string]string{"rule": r.ID}, Value: float64(r.Hits)})
	}
	return out, nil
}

// verdicts are the allowed and denied packets of every interface by
// direction (DirectionName).
func (f *Firewall) verdicts() (map[string]map[string]Verdicts, error) {
	all := map[fwStatKey]Verdicts{}
	err := module.ReadPerCPU(f.gens.m["stats"], func(k fwStatKey, vs []fwStat) {
		var v Verdicts
		for _, s := range vs {
			v.Allowed += s.Allowed
			v.Denied += s.Denied
		}
		all[k] = v
	})
	if err != nil {
		return nil, fmt.Errorf("read stats: %w", err)
	}
	out := map[string]map[string]Verdicts{}
	for _, ifc := range f.ifaces.List() {
		dirs := map[string]Verdicts{}
		for dir, hook := range dirHooks {
			dirs[ifc.DirectionName(hook)] = all[fwStatKey{Ifindex: uint32(ifc.Ifindex), Dir: uint32(dir)}]
		}
		out[ifc.Name] = dirs
	}
	return out, nil
}

var _ module.MetricsReporter = (*Firewall)(nil)
