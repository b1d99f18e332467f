package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSLAConfig(t *testing.T) {
	cases := []struct {
		name, file string
		want       string // "" for valid
	}{
		{"default: no modules", `{}`, ""},
		{"allowed modules", `{"sla": {"modules": {"packetcounter": {"forbiddenKeys": ["maxInterfaces"]}, "proxy": {}}, "maxInstances": 2, "maxMapBytes": 1048576}}`, ""},
		{"limits kept when left out", `{"sla": {"modules": {"proxy": null}}}`, ""},
		{"bad module name", `{"sla": {"modules": {"../x": {}}}}`, `sla.modules: "../x" is not a module name`},
		{"empty key", `{"sla": {"modules": {"firewall": {"forbiddenKeys": [""]}}}}`, "sla.modules.firewall.forbiddenKeys[0]: empty"},
		{"key twice", `{"sla": {"modules": {"firewall": {"forbiddenKeys": ["a", "a"]}}}}`, `sla.modules.firewall.forbiddenKeys[1]: "a" is listed twice`},
		{"no instances", `{"sla": {"maxInstances": 0}}`, "sla.maxInstances 0: must be within 1-1000"},
		{"too many instances", `{"sla": {"maxInstances": 1001}}`, "sla.maxInstances 1001: must be within 1-1000"},
		{"no memory", `{"sla": {"maxMapBytes": 0}}`, "sla.maxMapBytes 0: must be at least 1"},
		{"negative memory", `{"sla": {"maxMapBytes": -1}}`, "maxMapBytes"},
		{"unknown key", `{"sla": {"module": {}}}`, `unknown field "module"`},
	}
	for _, c := range cases {
		path := filepath.Join(t.TempDir(), "nm.json")
		if err := os.WriteFile(path, []byte(c.file), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load([]string{"--config", path}, io.Discard)
		if err == nil {
			_, err = cfg.Validate()
		}
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	d := Default().SLA
	if len(d.Modules) != 0 || d.MaxInstances != DefaultSLAMaxInstances || d.MaxMapBytes != DefaultSLAMaxMapBytes {
		t.Errorf("default sla: %+v", d)
	}
}

// The policy the operator guide shows loads as it is.
func TestSLAConfigInTheGuide(t *testing.T) {
	data, err := os.ReadFile("../../docs/operator-guide.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i := strings.Index(doc, "### Tenant modules (SLA)")
	if i < 0 {
		t.Fatal("the guide has no Tenant modules (SLA) section")
	}
	doc = doc[i:]
	start := strings.Index(doc, "```json\n")
	end := strings.Index(doc[start+8:], "```")
	if start < 0 || end < 0 {
		t.Fatal("the section has no json block")
	}
	path := filepath.Join(t.TempDir(), "nm.json")
	if err := os.WriteFile(path, []byte(doc[start+8:start+8+end]), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load([]string{"--config", path}, io.Discard)
	if err == nil {
		_, err = cfg.Validate()
	}
	if err != nil || len(cfg.SLA.Modules) != 2 || cfg.SLA.Modules["proxy"].ForbiddenKeys[0] != "serviceRange" {
		t.Fatalf("the guide's sla: %+v %v", cfg.SLA, err)
	}
}
