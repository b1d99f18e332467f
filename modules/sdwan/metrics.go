package main

import "github.com/oakestra/netmanager/ebpfManager/module"

// Metrics are the gateway's samples for GET /metrics: the data plane's
// counters by event (the names of GET /ebpf/{id}/stats) and each GRE-WAN's
// health and traffic, by WAN name.
func (g *SDWAN) Metrics() ([]module.Metric, error) {
	c, err := g.counters()
	if err != nil {
		return nil, err
	}
	wans, err := g.wanInfos()
	if err != nil {
		return nil, err
	}
	out := make([]module.Metric, 0, len(statNames)+8*len(wans))
	for _, name := range statNames {
		out = append(out, module.Metric{Name: "packets_total", Help: "Packets the gateway counted, by event (noMatch, toLan, failover, ...).",
			Labels: map[string]string{"event": name}, Value: float64(c[name])})
	}
	for _, w := range wans {
		l := map[string]string{"wan": w.Name}
		up := 0.0
		if w.Up {
			up = 1
		}
		out = append(out,
			module.Metric{Name: "wan_up", Gauge: true, Help: "1 while the WAN's health probes pass.", Labels: l, Value: up},
			module.Metric{Name: "wan_latency_seconds", Gauge: true, Help: "The WAN's measured latency.", Labels: l, Value: w.LatencyMs / 1000},
			module.Metric{Name: "wan_jitter_seconds", Gauge: true, Help: "The WAN's measured jitter.", Labels: l, Value: w.JitterMs / 1000},
			module.Metric{Name: "wan_loss_ratio", Gauge: true, Help: "The share of the WAN's health probes lost (0-1).", Labels: l, Value: w.LossPercent / 100},
			module.Metric{Name: "wan_tx_packets_total", Help: "Packets sent on the WAN.", Labels: l, Value: float64(w.TxPackets)},
			module.Metric{Name: "wan_tx_bytes_total", Help: "Bytes sent on the WAN.", Labels: l, Value: float64(w.TxBytes)},
			module.Metric{Name: "wan_rx_packets_total", Help: "Packets received from the WAN.", Labels: l, Value: float64(w.RxPackets)},
			module.Metric{Name: "wan_rx_bytes_total", Help: "Bytes received from the WAN.", Labels: l, Value: float64(w.RxBytes)})
	}
	return out, nil
}

var _ module.MetricsReporter = (*SDWAN)(nil)
