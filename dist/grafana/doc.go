// Package grafana holds the NetManager's Grafana dashboard
// (netmanager-node.json: one node, Grafana 10+, a Prometheus datasource
// variable and a node variable) and its test: the dashboard parses, every
// PromQL query in it is well formed as far as promql.go checks, and every
// metric it names is one docs/metrics.md lists (the list a real scrape is
// held to). The package has no code the daemon uses.
package grafana
