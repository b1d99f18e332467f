package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultIsValid(t *testing.T) {
	n, err := Default().Validate()
	if err != nil {
		t.Fatal(err)
	}
	if n.Gateway.String() != "10.18.0.1" || n.GatewayV6.String() != "fd00:18::1" || n.NodeIP != n.Gateway {
		t.Fatalf("derived addresses: %+v", n)
	}
	// The NodeEngine dials only the unix socket; operators and tools use TCP.
	if c := Default(); c.Socket != "/etc/netmanager/netmanager.sock" || c.Listen != "127.0.0.1:6000" {
		t.Fatalf("default API: socket %q, listen %q", c.Socket, c.Listen)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.Listen, c.Socket = "", "" }, "unreachable"},
		{func(c *Config) { c.ClientID = "node-1" }, "clusterAddress"},
		{func(c *Config) { c.ClusterAddress = "192.0.2.10" }, "clientID"},
		{func(c *Config) { c.LogLevel = "loud" }, "logLevel"},
		{func(c *Config) { c.Bridge = "a-name-much-too-long" }, "bridge"},
		{func(c *Config) { c.PeerName = "eth 0" }, "peerName"},
		{func(c *Config) { c.NodeSubnet = "10.18.0.0" }, "nodeSubnet"},
		{func(c *Config) { c.NodeSubnet = "10.18.0.1/24" }, "host bits"},
		{func(c *Config) { c.NodeSubnet = "fd00::/64" }, "IPv4"},
		{func(c *Config) { c.NodeSubnet = "10.18.0.0/31" }, "too small"},
		{func(c *Config) { c.NodeSubnetV6 = "10.0.0.0/8" }, "nodeSubnetV6"},
		{func(c *Config) { c.NodeSubnetV6 = "fd00::/120"; c.NodeSubnet = "10.18.0.0/16" }, "smaller"},
		{func(c *Config) { c.ServiceRange = "10.18.0.0/16" }, "overlaps"},
		{func(c *Config) { c.ServiceRangeV6 = "10.30.0.0/16" }, "serviceRangeV6"},
		{func(c *Config) { c.ServiceRangeV6 = "fd00:18::/80" }, "overlaps nodeSubnetV6"},
		{func(c *Config) { c.ServiceRangeV6 = "fdff:2000::1/64" }, "host bits"},
		{func(c *Config) { c.MTU = 100 }, "mtu"},
		{func(c *Config) { c.TunnelPort = 70000 }, "tunnelPort"},
		{func(c *Config) { c.NodeIP = "nope" }, "nodeIP"},
		{func(c *Config) { c.ClusterSubnetBits = 31 }, "clusterSubnetBits 31"},
		{func(c *Config) { c.ClusterSubnetBitsV6 = 127 }, "clusterSubnetBitsV6 127"},
		{func(c *Config) { c.ClusterSubnetBitsV6 = 126 }, "at least as many addresses"},
		{func(c *Config) { c.TCMode = "xdp" }, "tcMode"},
		{func(c *Config) { c.PinDir = "relative" }, "pinDir"},
		{func(c *Config) { c.InterestTimeout = "10" }, "interestTimeout"},
		{func(c *Config) { c.InterestTimeout = "0s" }, "interestTimeout"},
	}
	for _, tc := range cases {
		c := Default()
		tc.mutate(&c)
		_, err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want error containing %q, got %v", tc.want, err)
		}
	}
}

func TestIPv6CanBeOff(t *testing.T) {
	c := Default()
	c.NodeSubnetV6 = ""
	n, err := c.Validate()
	if err != nil || n.NodeSubnetV6.IsValid() || n.ServiceRangeV6.IsValid() {
		t.Fatalf("got %+v, %v", n, err)
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nm.json")
	if err := os.WriteFile(path, []byte(`{"listen": "127.0.0.1:7000", "bridge": "filebr", "mtu": 1400}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"--config", path, "--bridge", "flagbr", "--log-level", "DEBUG"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:7000" || c.Bridge != "flagbr" || c.MTU != 1400 || c.LogLevel != "debug" {
		t.Fatalf("got %+v", c)
	}
	if c.NodeSubnet != Default().NodeSubnet {
		t.Fatalf("unset key lost its default: %q", c.NodeSubnet)
	}
}

func TestBPFStats(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nm.json")
	if err := os.WriteFile(path, []byte(`{"bpfStats": true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"--config", path}, true},
		{[]string{"--config", path, "--bpf-stats=false"}, false},
		{[]string{"--bpf-stats"}, true},
	} {
		c, err := Load(tc.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.BPFStats != tc.want {
			t.Errorf("Load(%v).BPFStats = %v, want %v", tc.args, c.BPFStats, tc.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(bad, []byte(`{"listne": "x"}`), 0o600)
	cases := [][]string{
		{"--config", bad}, // unknown key
		{"--config", filepath.Join(dir, "missing.json")}, // missing file
		{"--no-such-flag"},
		{"stray"},
	}
	for _, args := range cases {
		if _, err := Load(args, io.Discard); err == nil {
			t.Errorf("Load(%v): want error", args)
		}
	}
}

// The example in docs/ must load and validate as it stands.
func TestDocsExampleLoads(t *testing.T) {
	c, err := Load([]string{"--config", "../../docs/netmanager.example.json"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Socket != "/etc/netmanager/netmanager.sock" {
		t.Fatalf("socket %q", c.Socket)
	}
}

func TestExpediteAttach(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nm.json")
	if err := os.WriteFile(path, []byte(`{"expediteAttach": false}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, true}, // on by default
		{[]string{"--config", path}, false},
		{[]string{"--config", path, "--expedite-attach"}, true},
		{[]string{"--expedite-attach=false"}, false},
	} {
		c, err := Load(tc.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.ExpediteAttach != tc.want {
			t.Errorf("Load(%v).ExpediteAttach = %v, want %v", tc.args, c.ExpediteAttach, tc.want)
		}
	}
}
