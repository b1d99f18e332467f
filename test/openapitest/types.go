package openapitest

import (
	"reflect"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// MatchType fails tb where the document's schema name and the Go type an
// answer is encoded from disagree on the JSON fields: every field the type
// always encodes (no omitempty/omitzero) must be required by the schema, and
// every property and required name of the schema must be a field of the
// type. (A schema may require a field the type marks omitempty when the
// handler always fills it.)
func MatchType(tb testing.TB, doc *openapi3.T, name string, v any) {
	tb.Helper()
	ref := doc.Components.Schemas[name]
	if ref == nil || ref.Value == nil {
		tb.Errorf("the document has no schema %s", name)
		return
	}
	s := ref.Value
	always, all := jsonFields(reflect.TypeOf(v))
	for f := range always {
		if !contains(s.Required, f) {
			tb.Errorf("schema %s does not require %q, which %T always has", name, f, v)
		}
	}
	for p := range s.Properties {
		if !all[p] {
			tb.Errorf("schema %s has the property %q, which %T has not", name, p, v)
		}
	}
	for _, r := range s.Required {
		if !all[r] {
			tb.Errorf("schema %s requires %q, which %T has not", name, r, v)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// jsonFields returns the JSON names of t's fields (embedded structs
// flattened): those always encoded, and all.
func jsonFields(t reflect.Type) (always, all map[string]bool) {
	always, all = map[string]bool{}, map[string]bool{}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && !ok {
			a, b := jsonFields(f.Type)
			for k := range a {
				always[k] = true
			}
			for k := range b {
				all[k] = true
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		all[name] = true
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			always[name] = true
		}
	}
	return always, all
}
