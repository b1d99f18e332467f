package main

import (
	"maps"
	"slices"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Metrics are the counter's samples for GET /metrics: packets and bytes per
// interface and direction, as Counts reports them.
func (c *Counter) Metrics() ([]module.Metric, error) {
	counts, err := c.Counts()
	if err != nil {
		return nil, err
	}
	var out []module.Metric
	for _, ifname := range slices.Sorted(maps.Keys(counts)) {
		for dir, t := range counts[ifname] {
			l := map[string]string{"interface": ifname, "direction": dir}
			out = append(out,
				module.Metric{Name: "packets_total", Help: "Packets counted, by interface and direction.", Labels: l, Value: float64(t.Packets)},
				module.Metric{Name: "bytes_total", Help: "Bytes counted, by interface and direction.", Labels: l, Value: float64(t.Bytes)})
		}
	}
	return out, nil
}

var _ module.MetricsReporter = (*Counter)(nil)
