package bench

import (
	"strings"
	"testing"
)

func TestRenderScrape(t *testing.T) {
	r := ScrapeResult{Services: 50, Instances: 10, Attachments: 1000, Scrapes: 50, MedianMs: 3.2, P90Ms: 4.1, MaxMs: 7, Bytes: 90000, Samples: 1200,
		NoopOff: 40, NoopOn: 71.5, CounterOff: 60, CounterOn: 90}
	md := RenderScrape(r)
	for _, want := range []string{"(1000 attachments)", "| 3.20 ms | 4.10 ms | 7.00 ms | 1200 | 90000 | met |", "| no-op | 40.0 ns | 71.5 ns | +31.5 ns |",
		"| packet counter | 60.0 ns | 90.0 ns | +30.0 ns |"} {
		if !strings.Contains(md, want) {
			t.Errorf("section lacks %q:\n%s", want, md)
		}
	}
	r.MedianMs = 5.5
	if !strings.Contains(RenderScrape(r), "**not met**") {
		t.Error("a 5.5 ms median is rendered as met")
	}
}
