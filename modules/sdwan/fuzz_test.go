package main

import (
	"encoding/json"
	"testing"
)

// Any SD-WAN config (JSON or YAML) is refused with an error or validates
// and sizes its maps — never a panic.
func FuzzSDWANConfig(f *testing.F) {
	f.Add([]byte(`{"wans": [{"name": "a", "interface": "eth1", "local": "192.0.2.1", "remote": "198.51.100.1"}]}`))
	f.Add([]byte("wans:\n  - name: a\n    interface: eth1\n    local: 192.0.2.1\n    remote: 198.51.100.1\nprobeInterval: 100ms\n"))
	f.Add([]byte(`{"configFile": "/nonexistent"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, d, err := readConfig(json.RawMessage(raw))
		if err != nil {
			return
		}
		if c.validateTop(d) != nil {
			return
		}
		if _, err := MapSizes(json.RawMessage(raw)); err != nil {
			t.Fatalf("a config that validates cannot be sized: %v", err)
		}
	})
}
