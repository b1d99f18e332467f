package module

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
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
	type seen struct {
		gauge  bool
		labels string // the sorted label names, NUL-separated
	}
	names := map[string]seen{}
	series := make(map[string]bool, len(ms))
	var keys []string
	var id strings.Builder
	for _, m := range ms {
		keys = keys[:0]
		for k := range m.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		id.Reset()
		for _, k := range keys {
			id.WriteString(k)
			id.WriteByte(0)
		}
		labels := id.String()
		prev, ok := names[m.Name]
		switch {
		case !ok:
			if err := checkNew(m, keys); err != nil {
				return err
			}
			names[m.Name] = seen{gauge: m.Gauge, labels: labels}
		case prev.gauge != m.Gauge:
			return fmt.Errorf("metric %q: some samples are gauges, some counters", m.Name)
		case prev.labels != labels:
			return fmt.Errorf("metric %q: samples have labels %q and %q", m.Name, strings.Split(strings.TrimSuffix(prev.labels, "\x00"), "\x00"), keys)
		}
		id.WriteString(m.Name)
		for _, k := range keys {
			id.WriteByte(0)
			id.WriteString(m.Labels[k])
		}
		if series[id.String()] {
			return fmt.Errorf("metric %q: two samples with labels %v", m.Name, m.Labels)
		}
		series[id.String()] = true
	}
	return nil
}

// checkNew checks the first sample of a name: the name and its label names.
func checkNew(m Metric, keys []string) error {
	if !metricName.MatchString(m.Name) {
		return fmt.Errorf("metric %q: name must be lower-case snake case", m.Name)
	}
	if !m.Gauge && !strings.HasSuffix(m.Name, "_total") {
		return fmt.Errorf("metric %q: a counter's name ends in _total", m.Name)
	}
	for _, k := range keys {
		if !labelName.MatchString(k) {
			return fmt.Errorf("metric %q: label %q must be lower-case snake case", m.Name, k)
		}
		if k == "instance" || k == "module" {
			return fmt.Errorf("metric %q: label %q is set by the manager", m.Name, k)
		}
	}
	return nil
}
