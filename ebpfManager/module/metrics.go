package module

import (
	"fmt"
	"regexp"
	"sort"
)

// Metric is one sample of a module instance's own counters, exported by the
// NetManager's GET /metrics in the Prometheus text format as
// netmanager_module_<Name>{instance="…",module="…",<Labels>}.
type Metric struct {
	// Name is lower-case snake case without the prefix, e.g. "packets_total".
	// A counter's name ends in "_total"; samples of one name carry the same
	// label names.
	Name string
	// Help is one line saying what the sample counts.
	Help string
	// Gauge marks a value that can go down (a count of sessions, a health
	// state); otherwise the sample is a counter.
	Gauge bool
	// Labels are the sample's own labels, e.g. "interface", "direction",
	// "rule", "wan". The manager adds "instance" and "module", which a module
	// must not set. Keep the values few: an interface name or a rule id, never
	// an address or a port.
	Labels map[string]string
	Value  float64
}

// MetricsReporter is an optional interface of a Module: Metrics is called on
// every scrape of GET /metrics, so it reads its maps once (a batch lookup
// where it can) and returns quickly. An error is exported as that instance's
// scrape error, and its samples are left out.
type MetricsReporter interface {
	Metrics() ([]Metric, error)
}

var (
	metricName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	labelName  = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// CheckMetrics reports the first sample that breaks Metric's rules: a bad
// name or label name, a reserved label, a counter whose name does not end in
// "_total", samples of one name that differ in label names or in Gauge, or
// two samples with the same name and labels. The manager calls it on every
// scrape; modules call it in their tests.
func CheckMetrics(ms []Metric) error {
	labelsOf := map[string]string{}
	gauge := map[string]bool{}
	series := map[string]bool{}
	for _, m := range ms {
		if g, ok := gauge[m.Name]; ok && g != m.Gauge {
			return fmt.Errorf("metric %q: some samples are gauges, some counters", m.Name)
		}
		gauge[m.Name] = m.Gauge
		if !metricName.MatchString(m.Name) {
			return fmt.Errorf("metric %q: name must be lower-case snake case", m.Name)
		}
		if !m.Gauge && !hasTotalSuffix(m.Name) {
			return fmt.Errorf("metric %q: a counter's name ends in _total", m.Name)
		}
		names := make([]string, 0, len(m.Labels))
		for k := range m.Labels {
			if !labelName.MatchString(k) {
				return fmt.Errorf("metric %q: label %q must be lower-case snake case", m.Name, k)
			}
			if k == "instance" || k == "module" {
				return fmt.Errorf("metric %q: label %q is set by the manager", m.Name, k)
			}
			names = append(names, k)
		}
		sort.Strings(names)
		key := fmt.Sprint(names)
		if prev, ok := labelsOf[m.Name]; ok && prev != key {
			return fmt.Errorf("metric %q: samples have labels %s and %s", m.Name, prev, key)
		}
		labelsOf[m.Name] = key
		id := m.Name
		for _, k := range names {
			id += "\x00" + k + "\x00" + m.Labels[k]
		}
		if series[id] {
			return fmt.Errorf("metric %q: two samples with labels %v", m.Name, m.Labels)
		}
		series[id] = true
	}
	return nil
}

func hasTotalSuffix(name string) bool {
	return len(name) > len("_total") && name[len(name)-len("_total"):] == "_total"
}
