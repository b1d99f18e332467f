package config

import (
	"strings"
	"testing"
)

func TestAPIAccess(t *testing.T) {
	for _, c := range []struct {
		listen, token string
		err           string // "" for none
	}{
		{"127.0.0.1:6000", DefaultTokenFile, ""},
		{"127.0.0.2:6000", DefaultTokenFile, ""},
		{"[::1]:6000", DefaultTokenFile, ""},
		{"localhost:6000", DefaultTokenFile, ""},
		{"[::ffff:127.0.0.1]:6000", DefaultTokenFile, ""},
		{"", "", ""}, // TCP off: no token needed
		{"0.0.0.0:6000", DefaultTokenFile, `listen "0.0.0.0:6000": the API on TCP listens on loopback only`},
		{":6000", DefaultTokenFile, `listen ":6000": the API on TCP listens on loopback only`},
		{"[::]:6000", DefaultTokenFile, `listen "[::]:6000": the API on TCP listens on loopback only`},
		{"192.168.1.5:6000", DefaultTokenFile, `"192.168.1.5" is not loopback`},
		{"example.com:6000", DefaultTokenFile, `"example.com" is not loopback`},
		{"127.0.0.1", DefaultTokenFile, `listen "127.0.0.1": address 127.0.0.1: missing port`},
		{"127.0.0.1:6000", "token", `tokenFile "token": must be an absolute path`},
		{"127.0.0.1:6000", "", `tokenFile "": must be an absolute path`},
	} {
		cfg := Default()
		cfg.Listen, cfg.TokenFile = c.listen, c.token
		_, err := cfg.Validate()
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("listen %q tokenFile %q: %v, want %q", c.listen, c.token, err, c.err)
		}
	}
}

func TestTokenFileFlag(t *testing.T) {
	c, err := Load([]string{"--token-file", "/tmp/x/token"}, nil)
	if err != nil || c.TokenFile != "/tmp/x/token" {
		t.Fatalf("--token-file: %q %v", c.TokenFile, err)
	}
	if Default().TokenFile != "/etc/netmanager/token" {
		t.Errorf("default tokenFile %q", Default().TokenFile)
	}
}
