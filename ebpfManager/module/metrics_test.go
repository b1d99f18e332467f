package module

import (
	"fmt"
	"strings"
	"testing"
)

func TestCheckMetrics(t *testing.T) {
	ok := Metric{Name: "packets_total", Labels: map[string]string{"interface": "oak1", "direction": "ingress"}, Value: 3}
	for _, tc := range []struct {
		name string
		ms   []Metric
		want string // "" = valid
	}{
		{"valid counter and gauge", []Metric{ok, {Name: "sessions", Gauge: true}}, ""},
		{"same labels in another order", []Metric{ok, {Name: "packets_total", Labels: map[string]string{"direction": "egress", "interface": "oak2"}}}, ""},
		{"upper case", []Metric{{Name: "Packets_total"}}, "snake case"},
		{"counter without _total", []Metric{{Name: "packets"}}, "ends in _total"},
		{"bare _total", []Metric{{Name: "_total"}}, "snake case"},
		{"reserved label", []Metric{{Name: "x_total", Labels: map[string]string{"instance": "1"}}}, "set by the manager"},
		{"bad label", []Metric{{Name: "x_total", Labels: map[string]string{"if-name": "a"}}}, "label \"if-name\""},
		{"labels differ", []Metric{ok, {Name: "packets_total", Labels: map[string]string{"interface": "oak1"}}}, "samples have labels"},
		{"gauge and counter", []Metric{{Name: "up_total"}, {Name: "up_total", Gauge: true}}, "some samples are gauges"},
		{"one series twice", []Metric{ok, ok}, "two samples"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckMetrics(tc.ms)
			if tc.want == "" && err != nil {
				t.Fatalf("CheckMetrics: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("CheckMetrics = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// BenchmarkCheckMetrics is CheckMetrics over one packet counter's samples
// on 50 veths (200 samples).
func BenchmarkCheckMetrics(b *testing.B) {
	var ms []Metric
	for v := 0; v < 50; v++ {
		for _, dir := range []string{"ingress", "egress"} {
			l := map[string]string{"interface": fmt.Sprintf("oak%08x", v), "direction": dir}
			ms = append(ms, Metric{Name: "packets_total", Labels: l, Value: 1}, Metric{Name: "bytes_total", Labels: l, Value: 2})
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := CheckMetrics(ms); err != nil {
			b.Fatal(err)
		}
	}
}
