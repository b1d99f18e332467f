// Package bench measures the service path side by side in one run: direct
// (namespace IP), through the user-space proxy, and through the eBPF proxy
// (service IP) — throughput, connect latency, jitter, and CPU at 100 Mbit/s.
// `make bench` runs it and renders docs/benchmarks.md from its JSON output.
package bench
