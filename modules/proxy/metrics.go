package main

import "github.com/oakestra/netmanager/ebpfManager/module"

// Metrics are the proxy's samples for GET /metrics: the data plane's
// counters by event (the names GET /ebpf/{id}/stats uses), the session
// misses passed to the control plane and what it made of them.
func (p *Proxy) Metrics() ([]module.Metric, error) {
	dp, err := p.dataPlaneStats()
	if err != nil {
		return nil, err
	}
	out := make([]module.Metric, 0, len(statNames)+4)
	for _, name := range statNames {
		out = append(out, module.Metric{Name: "packets_total", Help: "Packets the data plane counted, by event (hits, newSessions, passedToUserspace, ...).",
			Labels: map[string]string{"event": name}, Value: float64(dp[name])})
	}
	for name, v := range p.missStats() {
		if name == "misses" {
			out = append(out, module.Metric{Name: "misses_total", Help: "Session misses the data plane passed to the control plane.", Value: float64(v)})
			continue
		}
		out = append(out, module.Metric{Name: "miss_outcomes_total", Help: "What the control plane made of the misses: resolved, unresolved, alreadyTranslated.",
			Labels: map[string]string{"outcome": name}, Value: float64(v)})
	}
	return out, nil
}

var _ module.MetricsReporter = (*Proxy)(nil)
