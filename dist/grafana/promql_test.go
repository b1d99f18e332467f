package grafana

import (
	"fmt"
	"slices"
	"strings"
)

// The PromQL parser (github.com/prometheus/prometheus/promql/parser) is not
// in this module's dependencies and would bring the whole Prometheus
// server's module graph into go.mod, which the module kit pins; the queries
// of one dashboard need less: metricNames finds the metric names of an
// expression by its lexical structure, and refuses what it cannot read.

// notMetrics are the words of PromQL that may stand where a metric name
// could: aggregation operators (followed by "by (...)" or "("), binary
// set operators and modifiers, and the number literals.
var notMetrics = []string{
	"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
	"bottomk", "topk", "quantile", "limitk", "limit_ratio",
	"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2",
}

// labelLists are the modifiers followed by a parenthesised list of label
// names.
var labelLists = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}

// metricNames returns the metric names an expression selects, in order.
// Label matchers ({...}), ranges and subqueries ([...]), strings, numbers
// and durations, Grafana's variables ($x, ${x}) and label lists of
// grouping modifiers are skipped; a word followed by "(" is a function. A
// selector by __name__ is refused (its name could not be checked), and so
// are unbalanced brackets and unterminated strings.
func metricNames(expr string) ([]string, error) {
	var names []string
	var stack []byte
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '{' || c == '[':
			end, err := skipBlock(expr, i)
			if err != nil {
				return nil, err
			}
			if strings.Contains(expr[i:end], "__name__") {
				return nil, fmt.Errorf("a selector by __name__ at %d", i)
			}
			i = end
		case c == '(':
			stack = append(stack, c)
			i++
		case c == ')':
			if len(stack) == 0 {
				return nil, fmt.Errorf("unbalanced ) at %d", i)
			}
			stack = stack[:len(stack)-1]
			i++
		case c == '}' || c == ']':
			return nil, fmt.Errorf("unbalanced %c at %d", c, i)
		case c == '$':
			i = skipVariable(expr, i)
		case c >= '0' && c <= '9' || c == '.':
			for i++; i < len(expr) && (isWord(expr[i]) || expr[i] == '.'); i++ {
			}
		case isWordStart(c):
			start := i
			for i++; i < len(expr) && isWord(expr[i]); i++ {
			}
			word := expr[start:i]
			next := nextNonSpace(expr, i)
			switch {
			case slices.Contains(labelLists, strings.ToLower(word)):
				if next < len(expr) && expr[next] == '(' {
					end := strings.IndexByte(expr[next:], ')')
					if end < 0 {
						return nil, fmt.Errorf("unterminated label list after %s", word)
					}
					i = next + end + 1
				}
			case slices.Contains(notMetrics, strings.ToLower(word)):
			case next < len(expr) && expr[next] == '(':
				// a function
			default:
				names = append(names, word)
			}
		default:
			i++
		}
	}
	if len(stack) > 0 {
		return nil, fmt.Errorf("%d unclosed (", len(stack))
	}
	return names, nil
}

func isWordStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':'
}

func isWord(c byte) bool { return isWordStart(c) || c >= '0' && c <= '9' }

func nextNonSpace(s string, i int) int {
	for i < len(s) && strings.IndexByte(" \t\n\r", s[i]) >= 0 {
		i++
	}
	return i
}

// skipString returns the index after the string literal at i.
func skipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at %d", i)
}

// skipBlock returns the index after the {...} or [...] at i, strings in it
// skipped.
func skipBlock(s string, i int) (int, error) {
	end := byte('}')
	if s[i] == '[' {
		end = ']'
	}
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"' || c == '\'' || c == '`':
			k, err := skipString(s, j)
			if err != nil {
				return 0, err
			}
			j = k - 1
		case c == '$':
			j = skipVariable(s, j) - 1
		case c == end:
			return j + 1, nil
		case c == '{' || c == '[' || c == '(' || c == ')':
			return 0, fmt.Errorf("%c inside a block at %d", c, j)
		}
	}
	return 0, fmt.Errorf("unterminated %c at %d", s[i], i)
}

// skipVariable returns the index after a Grafana variable at i: $name or
// ${...}.
func skipVariable(s string, i int) int {
	if i+1 < len(s) && s[i+1] == '{' {
		if end := strings.IndexByte(s[i:], '}'); end >= 0 {
			return i + end + 1
		}
		return len(s)
	}
	for i++; i < len(s) && isWord(s[i]); i++ {
	}
	return i
}
