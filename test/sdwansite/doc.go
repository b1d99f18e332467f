// Package sdwansite builds the two-site SD-WAN setup of docs/sdwan.md in
// network namespaces, for the integration tests and the benchmarks: two
// gateway nodes, each a NetManager with a LAN host behind it, joined by two
// WAN veth pairs (WAN 2 limited by tbf), and the sdwan module config that
// steers each site's traffic for the other over the WANs.
package sdwansite
