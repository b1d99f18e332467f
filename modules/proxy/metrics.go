package main

import "github.com/oakestra/netmanager/ebpfManager/module"

// Metrics are the proxy's samples for GET /metrics: the data plane's
// counters by event (the names GET /ebpf/{id}/stats uses) and the control
// plane's session misses by outcome.
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
		out = append(out, module.Metric{Name: "misses_total", Help: "Session misses the control plane handled (misses), by outcome.",
			Labels: map[string]string{"event": name}, Value: float64(v)})
	}
	return out, nil
}

var _ module.MetricsReporter = (*Proxy)(nil)
