// Package metricsdoc reads docs/metrics.md for tests: the table of every
// metric (name, type, label names) and the example scrape, so the document
// is checked against what the daemon and the modules export — and parses
// scrapes and picks samples out of them for the tests that read /metrics.
package metricsdoc
