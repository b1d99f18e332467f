package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
)

// Tables of the daemon's JSON. A column names a value by a dotted path of
// keys ("ingress.packets"; "" is the row's value itself) or computes it.

type col struct {
	head string
	key  string
	fn   func(row any) string // instead of key
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// decodeJSON decodes with numbers kept as they were written.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}

// lookup follows a dotted path of keys from v.
func lookup(v any, path string) any {
	if path == "" {
		return v
	}
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// cell is a value as a table shows it: "-" for absent or empty.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" {
			return "-"
		}
		return x
	case []any:
		if len(x) == 0 {
			return "-"
		}
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = cell(e)
		}
		return strings.Join(parts, ",")
	case map[string]any:
		b, _ := json.Marshal(x)
		return string(b)
	default:
		return fmt.Sprint(x)
	}
}

func (c col) value(row any) string {
	if c.fn != nil {
		return c.fn(row)
	}
	return cell(lookup(row, c.key))
}

func writeRows(w io.Writer, cols []col, rows []any, first []string, firstHead string) error {
	tw := newTable(w)
	heads := make([]string, 0, len(cols)+1)
	if firstHead != "" {
		heads = append(heads, firstHead)
	}
	for _, c := range cols {
		heads = append(heads, c.head)
	}
	fmt.Fprintln(tw, strings.Join(heads, "\t"))
	for i, r := range rows {
		vals := make([]string, 0, len(heads))
		if firstHead != "" {
			vals = append(vals, first[i])
		}
		for _, c := range cols {
			vals = append(vals, c.value(r))
		}
		fmt.Fprintln(tw, strings.Join(vals, "\t"))
	}
	return tw.Flush()
}

// listTable renders a JSON array of objects, one row each.
func listTable(empty string, cols ...col) renderer {
	return func(w io.Writer, data []byte) error {
		var rows []any
		if err := decodeJSON(data, &rows); err != nil {
			return err
		}
		return printList(w, rows, empty, cols)
	}
}

func printList(w io.Writer, rows []any, empty string, cols []col) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, empty)
		return err
	}
	return writeRows(w, cols, rows, nil, "")
}

// keyedTable renders a JSON object, one row per key (sorted), the key first.
func keyedTable(keyHead, empty string, cols ...col) renderer {
	return func(w io.Writer, data []byte) error {
		var obj map[string]any
		if err := decodeJSON(data, &obj); err != nil {
			return err
		}
		return printKeyed(w, obj, keyHead, empty, cols)
	}
}

func printKeyed(w io.Writer, obj map[string]any, keyHead, empty string, cols []col) error {
	if len(obj) == 0 {
		_, err := fmt.Fprintln(w, empty)
		return err
	}
	keys := sortedKeys(obj)
	rows := make([]any, len(keys))
	for i, k := range keys {
		rows[i] = obj[k]
	}
	return writeRows(w, cols, rows, keys, keyHead)
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// valueTable renders a JSON object of plain values as KEY VALUE lines.
func valueTable(keyHead, valHead string) renderer {
	return keyedTable(keyHead, "(none)", col{head: valHead})
}

// autoTable renders any JSON as a table as best it can: an array of
// objects by their keys, an object of objects by key and the inner keys,
// an object of plain values as key and value; anything else indented.
func autoTable(w io.Writer, data []byte) error {
	var v any
	if err := decodeJSON(data, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case []any:
		return printList(w, x, "(none)", inferCols(x))
	case map[string]any:
		rows := make([]any, 0, len(x))
		for _, k := range sortedKeys(x) {
			rows = append(rows, x[k])
		}
		if cols := inferCols(rows); len(cols) > 0 {
			return printKeyed(w, x, "KEY", "(none)", cols)
		}
		return printKeyed(w, x, "KEY", "(none)", []col{{head: "VALUE"}})
	}
	return writeIndented(w, data)
}

// inferCols are the flattened keys of rows that are all objects (nil
// otherwise), nested objects as dotted paths.
func inferCols(rows []any) []col {
	seen := map[string]bool{}
	var keys []string
	var walk func(prefix string, v any) bool
	walk = func(prefix string, v any) bool {
		m, ok := v.(map[string]any)
		if !ok {
			if prefix == "" {
				return false
			}
			if !seen[prefix] {
				seen[prefix] = true
				keys = append(keys, prefix)
			}
			return true
		}
		for _, k := range sortedKeys(m) {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			walk(p, m[k])
		}
		return true
	}
	for _, r := range rows {
		if !walk("", r) {
			return nil
		}
	}
	sort.Strings(keys)
	cols := make([]col, len(keys))
	for i, k := range keys {
		cols[i] = col{head: strings.ToUpper(k), key: k}
	}
	return cols
}
