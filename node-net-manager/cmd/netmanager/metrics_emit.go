package main

import (
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
)

// sink takes the daemon's samples: labels are name, value pairs (the
// caller's: a sink keeps none of the slice), and the samples of one name
// carry the same label names (CheckMetrics sees to it
// for modules). counter and gauge return false when a sample is refused:
// its family has the other type or other label names, or a name is not a
// legacy Prometheus name (which every exposition format can carry
// unquoted). emitter builds metric families for the library's encoders;
// textEmitter writes the text format straight away. Both refuse alike.
type sink interface {
	counter(name, help string, v float64, labels ...string) bool
	gauge(name, help string, v float64, labels ...string) bool
}

// validNames says a new family's name and label names are legacy
// Prometheus names.
func validNames(name string, labels []string) bool {
	if !model.LegacyValidation.IsValidMetricName(name) {
		return false
	}
	for i := 0; i < len(labels); i += 2 {
		if !model.LegacyValidation.IsValidLabelName(labels[i]) {
			return false
		}
	}
	return true
}

// emitter builds metric families (for OpenMetrics and protobuf scrapes).
type emitter struct {
	fams  map[string]*dto.MetricFamily
	names map[string]*string // label names, shared by every sample
}

func newEmitter() *emitter {
	return &emitter{fams: map[string]*dto.MetricFamily{}, names: map[string]*string{}}
}

func (e *emitter) counter(name, help string, v float64, labels ...string) bool {
	m := e.metric(name, help, dto.MetricType_COUNTER, labels)
	if m != nil {
		m.Counter = &dto.Counter{Value: &v}
	}
	return m != nil
}

func (e *emitter) gauge(name, help string, v float64, labels ...string) bool {
	m := e.metric(name, help, dto.MetricType_GAUGE, labels)
	if m != nil {
		m.Gauge = &dto.Gauge{Value: &v}
	}
	return m != nil
}

func (e *emitter) metric(name, help string, t dto.MetricType, labels []string) *dto.Metric {
	f := e.fams[name]
	if f == nil {
		if !validNames(name, labels) {
			return nil
		}
		n, h := name, help
		f = &dto.MetricFamily{Name: &n, Help: &h, Type: t.Enum()}
		e.fams[name] = f
	} else if f.GetType() != t || !sameLabelNames(f.Metric[0], labels) {
		return nil
	}
	pairs := make([]dto.LabelPair, len(labels)/2)
	values := make([]string, len(pairs)) // labels is the caller's to reuse
	m := &dto.Metric{Label: make([]*dto.LabelPair, len(pairs))}
	for i := range pairs {
		ln := e.names[labels[2*i]]
		if ln == nil {
			s := labels[2*i]
			ln = &s
			e.names[s] = ln
		}
		values[i] = labels[2*i+1]
		pairs[i] = dto.LabelPair{Name: ln, Value: &values[i]}
		m.Label[i] = &pairs[i]
	}
	slices.SortFunc(m.Label, func(a, b *dto.LabelPair) int { return strings.Compare(*a.Name, *b.Name) })
	f.Metric = append(f.Metric, m)
	return m
}

// sameLabelNames says labels (name, value pairs) have the names of m's.
func sameLabelNames(m *dto.Metric, labels []string) bool {
	if len(m.Label) != len(labels)/2 {
		return false
	}
	for i := 0; i < len(labels); i += 2 {
		if !slices.ContainsFunc(m.Label, func(p *dto.LabelPair) bool { return p.GetName() == labels[i] }) {
			return false
		}
	}
	return true
}

// families returns the families by name.
func (e *emitter) families() []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(e.fams))
	for _, n := range slices.Sorted(maps.Keys(e.fams)) {
		out = append(out, e.fams[n])
	}
	return out
}

// textEmitter writes the text exposition format (version 0.0.4) as
// expfmt.MetricFamilyToText writes the families emitter builds from the
// same samples, byte for byte (TestTextEmitterMatchesLibrary), without
// building them: sample lines go into one buffer as they come, each family
// keeps where its lines are, and appendTo puts them in family order. The
// buffer is reused from scrape to scrape (textArenas); the families are
// not: a new textEmitter each scrape, so no series outlives its subject.
type textEmitter struct {
	fams  map[string]*textFamily
	lines []byte
}

// textFamily is one family's header and where its sample lines are.
type textFamily struct {
	typ    dto.MetricType
	help   string
	labels []string // the first sample's label names, in its order
	order  []int    // the first sample's pairs in label name order
	spans  []int32  // start and end of each run of its lines in lines
}

// textArenas are the text emitters' line buffers.
var textArenas = sync.Pool{New: func() any { return new([]byte) }}

func newTextEmitter() *textEmitter {
	return &textEmitter{fams: map[string]*textFamily{}, lines: (*textArenas.Get().(*[]byte))[:0]}
}

// release returns the line buffer: e is not used after.
func (e *textEmitter) release() {
	b := e.lines[:0]
	e.lines = nil
	textArenas.Put(&b)
}

func (e *textEmitter) counter(name, help string, v float64, labels ...string) bool {
	return e.sample(name, help, dto.MetricType_COUNTER, v, labels)
}

func (e *textEmitter) gauge(name, help string, v float64, labels ...string) bool {
	return e.sample(name, help, dto.MetricType_GAUGE, v, labels)
}

func (e *textEmitter) sample(name, help string, t dto.MetricType, v float64, labels []string) bool {
	f := e.fams[name]
	if f == nil {
		if !validNames(name, labels) {
			return false
		}
		f = &textFamily{typ: t, help: help, order: nameOrder(labels)}
		for i := 0; i < len(labels); i += 2 {
			f.labels = append(f.labels, labels[i])
		}
		e.fams[name] = f
	} else if f.typ != t || len(labels) != 2*len(f.labels) {
		return false
	}
	order := f.order
	if !f.sameOrder(labels) {
		for i := 0; i < len(labels); i += 2 {
			if !slices.Contains(f.labels, labels[i]) {
				return false
			}
		}
		order = nameOrder(labels)
	}
	start := len(e.lines)
	b := append(e.lines, name...)
	for i, j := range order {
		if i == 0 {
			b = append(b, '{')
		} else {
			b = append(b, ',')
		}
		b = append(b, labels[2*j]...)
		b = append(b, '=', '"')
		b = appendEscaped(b, labels[2*j+1], true)
		b = append(b, '"')
	}
	if len(order) > 0 {
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = appendFloat(b, v)
	e.lines = append(b, '\n')
	if n := len(f.spans); n > 0 && f.spans[n-1] == int32(start) {
		f.spans[n-1] = int32(len(e.lines)) // the run goes on
	} else {
		f.spans = append(f.spans, int32(start), int32(len(e.lines)))
	}
	return true
}

// sameOrder says labels name the family's labels in the first sample's order.
func (f *textFamily) sameOrder(labels []string) bool {
	for i, n := range f.labels {
		if labels[2*i] != n {
			return false
		}
	}
	return true
}

// nameOrder is the pairs of labels in label name order.
func nameOrder(labels []string) []int {
	order := make([]int, len(labels)/2)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(labels[2*a], labels[2*b]) })
	return order
}

// appendTo appends the families, by name, each with its HELP and TYPE.
func (e *textEmitter) appendTo(b []byte) []byte {
	for _, name := range slices.Sorted(maps.Keys(e.fams)) {
		f := e.fams[name]
		b = append(b, "# HELP "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = appendEscaped(b, f.help, false)
		b = append(b, "\n# TYPE "...)
		b = append(b, name...)
		if f.typ == dto.MetricType_COUNTER {
			b = append(b, " counter\n"...)
		} else {
			b = append(b, " gauge\n"...)
		}
		for i := 0; i < len(f.spans); i += 2 {
			b = append(b, e.lines[f.spans[i]:f.spans[i+1]]...)
		}
	}
	return b
}

// appendEscaped escapes as the text format does: a backslash and a line
// feed, and in a label value a double quote.
func appendEscaped(b []byte, s string, quote bool) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch {
		case s[i] == '\\':
			esc = `\\`
		case s[i] == '\n':
			esc = `\n`
		case s[i] == '"' && quote:
			esc = `\"`
		default:
			continue
		}
		b = append(append(b, s[start:i]...), esc...)
		start = i + 1
	}
	return append(b, s[start:]...)
}

// appendFloat writes a value as the text format does.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case f == 1:
		return append(b, '1')
	case f == 0:
		return append(b, '0')
	case f == -1:
		return append(b, "-1"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, +1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}
