package metricsdoc

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Row is one metric the document lists.
type Row struct {
	Type   string   // "counter" or "gauge"
	Labels []string // sorted
}

var rowRE = regexp.MustCompile("^\\| `(netmanager_[a-z0-9_]+)` \\| (counter|gauge) \\|([^|]*)\\|")

// Path is docs/metrics.md in this checkout.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "docs", "metrics.md")
}

// Rows reads the table of every metric.
func Rows(t testing.TB) map[string]Row {
	t.Helper()
	f, err := os.Open(Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]Row{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := rowRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var labels []string
		for _, l := range strings.Split(m[3], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		out[m[1]] = Row{Type: m[2], Labels: labels}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no metric table", Path())
	}
	return out
}

// Example parses the example scrape (the code block after
// "<!-- example:scrape -->").
func Example(t testing.TB) map[string]*dto.MetricFamily {
	t.Helper()
	data, err := os.ReadFile(Path())
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "<!-- example:scrape -->\n```\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatalf("%s has no example scrape", Path())
	}
	return Parse(t, "the example scrape", []byte(block))
}

// Parse parses a Prometheus text exposition, failing the test if it does
// not parse.
func Parse(t testing.TB, what string, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("%s does not parse: %v\n%s", what, err, text)
	}
	return fams
}

// Value is the value of the one sample of name whose labels include want;
// ok is false when there is none.
func Value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (v float64, ok bool) {
next:
	for _, m := range fams[name].GetMetric() {
		for k, v := range want {
			if Label(m, k) != v {
				continue next
			}
		}
		if m.Counter != nil {
			return m.Counter.GetValue(), true
		}
		return m.Gauge.GetValue(), m.Gauge != nil
	}
	return 0, false
}

// Label is the value of a sample's label ("" when it has none).
func Label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Of describes a family as a Row: its type and its first sample's label names.
func Of(f *dto.MetricFamily) Row {
	r := Row{Type: strings.ToLower(f.GetType().String())}
	if len(f.Metric) > 0 {
		for _, l := range f.Metric[0].Label {
			r.Labels = append(r.Labels, l.GetName())
		}
	}
	slices.Sort(r.Labels)
	return r
}

// Equal says two rows agree.
func (r Row) Equal(o Row) bool { return r.Type == o.Type && slices.Equal(r.Labels, o.Labels) }
