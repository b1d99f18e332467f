package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Config is an instance's configuration: the load request's JSON config, or
// the YAML file it names ({"configFile": "/path/sdwan.yaml"}). Both are read
// by the same YAML decoder (JSON is YAML), so errors name the field and line
// either way.
type Config struct {
	LAN           []string    `yaml:"lan" json:"lan"`
	WANs          []WANConfig `yaml:"wans" json:"wans"`
	DefaultPolicy string      `yaml:"defaultPolicy" json:"defaultPolicy"` // pass (default) or drop
	Rules         []Rule      `yaml:"rules" json:"rules"`
	LBR           []LBRConfig `yaml:"lbr" json:"lbr"`
	Health        Health      `yaml:"health" json:"health"`
	GRPC          string      `yaml:"grpc" json:"grpc"`         // listen address, default 127.0.0.1:50051; "off" disables
	MaxFlows      int         `yaml:"maxFlows" json:"maxFlows"` // flow cache size, default 65536
	// MaxNexthops is the downlink next-hop cache's size per CPU (a power
	// of two), default 1024.
	MaxNexthops int `yaml:"maxNexthops" json:"maxNexthops"`
	// NexthopRefresh is how long a cached next hop may live without a
	// netlink event (for changes netlink does not report), default 1s;
	// 0s: only events.
	NexthopRefresh Duration `yaml:"nexthopRefresh" json:"nexthopRefresh"`
}

// WANConfig is one WAN link and the overlay over it to the peer gateway.
type WANConfig struct {
	Name      string `yaml:"name" json:"name"` // default: the interface's name
	Interface string `yaml:"interface" json:"interface"`
	Local     string `yaml:"local" json:"local,omitempty"`     // default: the interface's first IPv4 address
	Peer      string `yaml:"peer" json:"peer"`                 // the peer gateway's address on this WAN
	Nexthop   string `yaml:"nexthop" json:"nexthop,omitempty"` // default: the peer (on-link)
	MTU       int    `yaml:"mtu" json:"mtu,omitempty"`         // default: the interface's MTU
	TOS       string `yaml:"tos" json:"tos,omitempty"`         // outer ToS: "inherit" (default) or 0-255
	TTL       int    `yaml:"ttl" json:"ttl,omitempty"`         // outer TTL, default 64
}

// LBRConfig is the load-balancing rule of one ToS class: a weighted set of
// WAN overlays, and the SLA a WAN must meet to carry the class's new flows.
type LBRConfig struct {
	TOS      *int      `yaml:"tos" json:"tos,omitempty"`         // the class (ToS byte, ECN bits zero)
	Default  bool      `yaml:"default" json:"default,omitempty"` // the LBR of every class without one
	Overlays []Overlay `yaml:"overlays" json:"overlays"`
	SLA      *SLA      `yaml:"sla" json:"sla,omitempty"`
}

// Overlay is a WAN's share of a class.
type Overlay struct {
	WAN    string `yaml:"wan" json:"wan"`
	Weight int    `yaml:"weight" json:"weight"`
}

// SLA thresholds; zero leaves one open.
type SLA struct {
	LatencyMs   float64 `yaml:"latencyMs" json:"latencyMs,omitempty"`
	LossPercent float64 `yaml:"lossPercent" json:"lossPercent,omitempty"`
	JitterMs    float64 `yaml:"jitterMs" json:"jitterMs,omitempty"`
}

// Health configures the probes on every WAN.
type Health struct {
	Interval  Duration `yaml:"interval" json:"interval"`   // default 100ms; "0s" turns probing off
	Timeout   Duration `yaml:"timeout" json:"timeout"`     // a probe unanswered this long is lost, default 300ms
	DownAfter int      `yaml:"downAfter" json:"downAfter"` // consecutive losses, default 3
	UpAfter   int      `yaml:"upAfter" json:"upAfter"`     // consecutive answers, default 3
	Window    int      `yaml:"window" json:"window"`       // probes that loss and jitter are computed over, default 20
}

// Duration is a time.Duration written as "100ms".
type Duration struct{ time.Duration }

// UnmarshalYAML reads "100ms" or a number of milliseconds. Its errors are
// nodeErrors, which readConfig turns into errors naming the field.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	kinds := map[yaml.Kind]string{yaml.MappingNode: "a mapping", yaml.SequenceNode: "a sequence"}
	if k, ok := kinds[n.Kind]; ok {
		return &nodeError{line: n.Line, column: n.Column, msg: k + " is not a duration (e.g. 100ms)"}
	}
	if v, err := strconv.ParseFloat(n.Value, 64); err == nil && n.Tag != "!!str" {
		d.Duration = time.Duration(v * float64(time.Millisecond))
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return &nodeError{line: n.Line, column: n.Column, msg: fmt.Sprintf("%q is not a duration (e.g. 100ms)", n.Value)}
	}
	d.Duration = v
	return nil
}

// nodeError is an UnmarshalYAML's error about the value at a line and
// column, which only the whole document can name (see doc.nodeErr).
type nodeError struct {
	line, column int
	msg          string
}

func (e *nodeError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// MarshalJSON writes the duration as "100ms".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// fieldError is a config error at a place in the document.
type fieldError struct {
	path string
	line int
	msg  string
}

func (e *fieldError) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("%s (line %d): %s", e.path, e.line, e.msg)
	}
	return fmt.Sprintf("%s: %s", e.path, e.msg)
}

// doc is a parsed config document, for finding the line of a field.
type doc struct{ root *yaml.Node }

// line returns the line of the value at path (map keys and sequence
// indexes), or of the deepest part of it that exists.
func (d doc) line(path ...any) int {
	n := d.root
	if n == nil {
		return 0
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						next = n.Content[i+1]
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
			}
		}
		if next == nil {
			return line
		}
		n, line = next, next.Line
	}
	return line
}

// pathTo returns the path (map keys and sequence indexes) of the value
// node under n at line and column, appended to path.
func pathTo(n *yaml.Node, line, column int, path []any) ([]any, bool) {
	if n.Line == line && n.Column == column && n.Kind != yaml.DocumentNode {
		return path, true
	}
	for i, c := range n.Content {
		var p []any
		switch n.Kind {
		case yaml.DocumentNode:
			p = path
		case yaml.MappingNode:
			if i%2 == 0 {
				continue // a key
			}
			p = append(path[:len(path):len(path)], n.Content[i-1].Value)
		case yaml.SequenceNode:
			p = append(path[:len(path):len(path)], i)
		}
		if found, ok := pathTo(c, line, column, p); ok {
			return found, true
		}
	}
	return nil, false
}

// nodeErr turns a nodeError into a fieldError naming the value's field.
func (d doc) nodeErr(e *nodeError) error {
	if d.root != nil {
		if path, ok := pathTo(d.root, e.line, e.column, nil); ok && len(path) > 0 {
			return d.errAt("%s", path, e.msg)
		}
	}
	return &fieldError{path: "config", line: e.line, msg: e.msg}
}

// errAt builds a fieldError for path.
func (d doc) errAt(format string, path []any, args ...any) error {
	var b strings.Builder
	for _, p := range path {
		switch k := p.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		case int:
			fmt.Fprintf(&b, "[%d]", k)
		}
	}
	return &fieldError{path: b.String(), line: d.line(path...), msg: fmt.Sprintf(format, args...)}
}

// readConfig decodes raw (the load request's config) into a Config with
// defaults. Unknown fields are errors.
func readConfig(raw json.RawMessage) (Config, doc, error) {
	c := Config{DefaultPolicy: "pass", GRPC: "127.0.0.1:50051", MaxFlows: 65536, MaxNexthops: 1024, NexthopRefresh: Duration{time.Second},
		Health: Health{Interval: Duration{100 * time.Millisecond}, Timeout: Duration{300 * time.Millisecond}, DownAfter: 3, UpAfter: 3, Window: 20}}
	if len(raw) == 0 || string(raw) == "null" {
		return c, doc{}, errors.New("config: the sdwan module needs a config (lan, wans, rules) or {\"configFile\": path}")
	}
	var file struct {
		ConfigFile string `json:"configFile"`
	}
	var keys map[string]json.RawMessage
	if json.Unmarshal(raw, &keys) == nil && keys["configFile"] != nil {
		if len(keys) != 1 {
			return c, doc{}, errors.New("config: configFile must be the only key")
		}
		if err := json.Unmarshal(raw, &file); err != nil || file.ConfigFile == "" {
			return c, doc{}, errors.New("config: configFile must be a file path")
		}
		b, err := os.ReadFile(file.ConfigFile)
		if err != nil {
			return c, doc{}, fmt.Errorf("config: %v", err)
		}
		raw = b
	}
	var root yaml.Node
	if yaml.Unmarshal(raw, &root) != nil && json.Valid(raw) {
		// JSON with an escape YAML lacks (\/): re-encode it plainly.
		var v any
		_ = json.Unmarshal(raw, &v)
		raw, _ = json.Marshal(v)
	}
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return c, doc{}, fmt.Errorf("config: %v", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		var ne *nodeError
		if errors.As(err, &ne) {
			return c, doc{}, doc{root: &root}.nodeErr(ne)
		}
		if path, msg := misfit(&root, reflect.TypeOf(c), nil); path != nil {
			return c, doc{}, doc{root: &root}.errAt("%s", path, msg)
		}
		return c, doc{}, fmt.Errorf("config: %v", err)
	}
	return c, doc{root: &root}, nil
}

// misfit finds the value under n that does not decode into typ (a wrong
// type: the decoder's own error names only a line, and a JSON config is
// one line): its path, appended to path, and what is wrong with it.
func misfit(n *yaml.Node, typ reflect.Type, path []any) ([]any, string) {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return misfit(n.Content[0], typ, path)
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	err := n.Decode(reflect.New(typ).Interface())
	if err == nil {
		return nil, ""
	}
	switch {
	case n.Kind == yaml.MappingNode && typ.Kind() == reflect.Struct:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if f, ok := fieldByKey(typ, n.Content[i].Value); ok {
				if p, msg := misfit(n.Content[i+1], f.Type, append(path[:len(path):len(path)], n.Content[i].Value)); p != nil {
					return p, msg
				}
			}
		}
	case n.Kind == yaml.SequenceNode && typ.Kind() == reflect.Slice:
		for i, c := range n.Content {
			if p, msg := misfit(c, typ.Elem(), append(path[:len(path):len(path)], i)); p != nil {
				return p, msg
			}
		}
	}
	var te *yaml.TypeError
	if len(path) == 0 || !errors.As(err, &te) || len(te.Errors) == 0 {
		return nil, ""
	}
	msg := te.Errors[0]
	if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "line ") {
		msg = rest
	}
	return path, msg
}

// fieldByKey is the struct field a YAML key decodes into.
func fieldByKey(typ reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == key && f.IsExported() {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// validateTop checks the fields that need no interface: policy, sizes,
// health, and that every WAN has a name, interface and peer.
func (c *Config) validateTop(d doc) error {
	if c.DefaultPolicy != "pass" && c.DefaultPolicy != "drop" {
		return d.errAt("must be pass or drop, not %q", []any{"defaultPolicy"}, c.DefaultPolicy)
	}
	if c.MaxFlows < 1 || c.MaxFlows > 1<<24 {
		return d.errAt("%d must be within 1-%d", []any{"maxFlows"}, c.MaxFlows, 1<<24)
	}
	if n := c.MaxNexthops; n < 1 || n > 1<<16 || n&(n-1) != 0 {
		return d.errAt("%d must be a power of two within 1-%d", []any{"maxNexthops"}, n, 1<<16)
	}
	if c.NexthopRefresh.Duration < 0 {
		return d.errAt("must not be negative", []any{"nexthopRefresh"})
	}
	h := c.Health
	switch {
	case h.Interval.Duration < 0:
		return d.errAt("must not be negative", []any{"health", "interval"})
	case h.Interval.Duration > 0 && h.Timeout.Duration <= 0:
		return d.errAt("must be positive", []any{"health", "timeout"})
	case h.DownAfter < 1:
		return d.errAt("must be at least 1", []any{"health", "downAfter"})
	case h.UpAfter < 1:
		return d.errAt("must be at least 1", []any{"health", "upAfter"})
	case h.Window < 1 || h.Window > 1000:
		return d.errAt("must be within 1-1000", []any{"health", "window"})
	}
	if c.GRPC != "off" {
		if _, err := netip.ParseAddrPort(c.GRPC); err != nil {
			return d.errAt("%q is not an address:port (or off)", []any{"grpc"}, c.GRPC)
		}
	}
	if len(c.LAN) == 0 {
		return d.errAt("at least one LAN interface is needed", []any{"lan"})
	}
	if len(c.WANs) == 0 || len(c.WANs) > sdMaxWANs {
		return d.errAt("1-%d WANs are needed, not %d", []any{"wans"}, sdMaxWANs, len(c.WANs))
	}
	seen := map[string]bool{}
	for _, l := range c.LAN {
		if seen[l] {
			return d.errAt("interface %q is listed twice", []any{"lan"}, l)
		}
		seen[l] = true
	}
	names := map[string]bool{"lan": true, "lbr": true}
	for i := range c.WANs {
		w := &c.WANs[i]
		if w.Interface == "" {
			return d.errAt("is required", []any{"wans", i, "interface"})
		}
		if seen[w.Interface] {
			return d.errAt("interface %q already has a role", []any{"wans", i, "interface"}, w.Interface)
		}
		seen[w.Interface] = true
		if w.Name == "" {
			w.Name = w.Interface
		}
		if names[w.Name] {
			return d.errAt("%q is taken (names are unique; lan and lbr are reserved)", []any{"wans", i, "name"}, w.Name)
		}
		names[w.Name] = true
		if a, err := netip.ParseAddr(w.Peer); err != nil || !a.Is4() {
			return d.errAt("%q is not an IPv4 address", []any{"wans", i, "peer"}, w.Peer)
		}
		for _, f := range []struct{ name, v string }{{"local", w.Local}, {"nexthop", w.Nexthop}} {
			if a, err := netip.ParseAddr(f.v); f.v != "" && (err != nil || !a.Is4()) {
				return d.errAt("%q is not an IPv4 address", []any{"wans", i, f.name}, f.v)
			}
		}
		if w.MTU != 0 && (w.MTU < 576 || w.MTU > 65535) {
			return d.errAt("%d must be within 576-65535", []any{"wans", i, "mtu"}, w.MTU)
		}
		if w.TTL == 0 {
			w.TTL = 64
		}
		if w.TTL < 1 || w.TTL > 255 {
			return d.errAt("%d must be within 1-255", []any{"wans", i, "ttl"}, w.TTL)
		}
		if _, err := parseOuterTOS(w.TOS); err != nil {
			return d.errAt("%v", []any{"wans", i, "tos"}, err)
		}
	}
	return nil
}

// parseOuterTOS reads a WAN's outer ToS: "inherit" or "" copy the inner one.
func parseOuterTOS(s string) (uint32, error) {
	if s == "" || s == "inherit" {
		return sdTosInherit, nil
	}
	v, err := strconv.ParseUint(s, 0, 8)
	if err != nil {
		return 0, fmt.Errorf("%q must be inherit or 0-255", s)
	}
	return uint32(v), nil
}

// wanIndex returns the index of the WAN called name, or -1.
func (c *Config) wanIndex(name string) int {
	for i, w := range c.WANs {
		if w.Name == name {
			return i
		}
	}
	return -1
}

// MapSizes sets the flow cache's size from the config.
func MapSizes(raw json.RawMessage) (map[string]uint32, error) {
	c, d, err := readConfig(raw)
	if err == nil {
		err = c.validateTop(d)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", module.ErrInvalidConfig, err)
	}
	return map[string]uint32{"flows": uint32(c.MaxFlows), "nhcache": uint32(c.MaxNexthops)}, nil
}
