package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Config is everything the daemon can be told. JSON keys are the file format.
type Config struct {
	Listen    string `json:"listen"`    // TCP address of the HTTP API; "" disables TCP
	Socket    string `json:"socket"`    // unix socket path of the HTTP API; "" disables it
	TokenFile string `json:"tokenFile"` // the bearer token of the API on TCP (see APIAccess)
	// TLSCert, TLSKey and TLSClientCA (all or none) serve the API on TCP
	// over TLS, to callers with a client certificate the CA signed: the
	// only way to listen elsewhere than on loopback (see APIAccess).
	TLSCert      string `json:"tlsCert"`
	TLSKey       string `json:"tlsKey"`
	TLSClientCA  string `json:"tlsClientCA"`
	ModulesDir   string `json:"modulesDir"`   // where eBPF modules are found
	StateDir     string `json:"stateDir"`     // where state (pins, records) lives
	LogLevel     string `json:"logLevel"`     // logrus level name
	Bridge       string `json:"bridge"`       // node bridge name
	NodeSubnet   string `json:"nodeSubnet"`   // IPv4 subnet of this node's services; .1 is the bridge
	NodeSubnetV6 string `json:"nodeSubnetV6"` // IPv6 subnet; "" disables IPv6
	ServiceRange string `json:"serviceRange"` // where service and instance IPs come from
	// ServiceRangeV6 is where IPv6 service and instance IPs come from; "" gives
	// services IPv4 service IPs only, as does turning IPv6 off (nodeSubnetV6 "").
	ServiceRangeV6 string `json:"serviceRangeV6"`
	MTU            int    `json:"mtu"`      // MTU of the bridge and every veth
	PeerName       string `json:"peerName"` // name of the interface inside a service's namespace
	// NodeIP is the address other nodes reach this node on; "" is the source
	// address of the node's default route (as the reference NetManager picks
	// it), or the bridge gateway on a node without one.
	NodeIP     string `json:"nodeIP"`
	TunnelPort int    `json:"tunnelPort"` // UDP port of the inter-node tunnel
	PinDir     string `json:"pinDir"`     // bpffs directory for module pins
	TCMode     string `json:"tcMode"`     // how module programs are chained: auto, tcx, legacy
	Proxy      bool   `json:"proxy"`      // run the user-space service proxy
	Persist    bool   `json:"persist"`    // leave services running at shutdown and re-adopt them at start
	ProxyTun   string `json:"proxyTun"`   // its TUN device
	// BPFStats turns the kernel's BPF run-time statistics on while the daemon
	// runs, for GET /metrics to export every module program's run count and
	// run time. Off by default: the kernel then reads the clock twice per
	// program run (docs/metrics.md gives the cost).
	BPFStats bool `json:"bpfStats"`
	// ExpediteAttach expedites the kernel's RCU grace periods
	// (/sys/kernel/rcu_expedited) for the few microseconds each TCX attach
	// or detach takes, instead of letting each wait ~10 ms for a normal
	// one. On by default; while a window is open every grace period on the
	// node is expedited, which interrupts each CPU once (docs/operator-guide.md).
	ExpediteAttach bool `json:"expediteAttach"`
	// SLA is what a deploy's ebpfModules (a tenant's SLA) may ask for.
	SLA SLA `json:"sla"`
	// ClientID and ClusterAddress register the node with its cluster at
	// start, as POST /register would (both or neither).
	ClientID       string `json:"clientID"`
	ClusterAddress string `json:"clusterAddress"` // host or host:port of the cluster's MQTT broker
	// ClusterSubnetBits and ClusterSubnetBitsV6 are the prefix lengths of the
	// node subnet a cluster hands out (it sends only the first address):
	// Oakestra's are /26 and /120.
	ClusterSubnetBits   int `json:"clusterSubnetBits"`
	ClusterSubnetBitsV6 int `json:"clusterSubnetBitsV6"`
	// InterestTimeout is how long the node follows a job of the cluster's
	// that has no instance on it after its last lookup, before it tells
	// the cluster (interest/remove) and forgets it: a Go duration, 10s as
	// the reference.
	InterestTimeout string `json:"interestTimeout"`
	// MQTTCAFile, MQTTCertFile and MQTTKeyFile make the broker connection
	// MQTT over TLS (ssl://): the PEM CA the broker's certificate must chain
	// to, and the node's client certificate and key (both or neither).
	// MQTTUsername and MQTTPasswordFile (a file holding the password) are
	// the MQTT credentials. See MQTT.
	MQTTCAFile       string `json:"mqttCAFile"`
	MQTTCertFile     string `json:"mqttCertFile"`
	MQTTKeyFile      string `json:"mqttKeyFile"`
	MQTTUsername     string `json:"mqttUsername"`
	MQTTPasswordFile string `json:"mqttPasswordFile"`
}

// DefaultSocket is where the Oakestra NodeEngine dials the NetManager: it
// never uses TCP.
const DefaultSocket = "/etc/netmanager/netmanager.sock"

// Default returns the built-in configuration: the API on both the
// NodeEngine's unix socket and 127.0.0.1:6000.
func Default() Config {
	return Config{
		Listen:         "127.0.0.1:6000",
		Socket:         DefaultSocket,
		TokenFile:      DefaultTokenFile,
		StateDir:       "/var/lib/netmanager",
		LogLevel:       "info",
		Bridge:         "goProxyBridge",
		NodeSubnet:     "10.18.0.0/24",
		NodeSubnetV6:   "fd00:18::/64",
		ServiceRange:   "10.30.0.0/16",
		ServiceRangeV6: "fdff::/16",
		MTU:            1450,
		PeerName:       "eth0",
		TunnelPort:     50103,
		PinDir:         "/sys/fs/bpf/netmanager",
		TCMode:         "auto",
		ExpediteAttach: true,
		Proxy:          true,
		ProxyTun:       "goProxyTun",

		ClusterSubnetBits:   26,
		ClusterSubnetBitsV6: 120,
		InterestTimeout:     "10s",

		SLA: SLA{MaxInstances: DefaultSLAMaxInstances, MaxMapBytes: DefaultSLAMaxMapBytes},
	}
}

// Network is the validated, parsed network part of a Config.
type Network struct {
	Bridge         string
	NodeSubnet     netip.Prefix
	Gateway        netip.Addr
	NodeSubnetV6   netip.Prefix // invalid when IPv6 is off
	GatewayV6      netip.Addr
	ServiceRange   netip.Prefix
	ServiceRangeV6 netip.Prefix // invalid when off
	MTU            int
	PeerName       string
	NodeIP         netip.Addr
	// NodeIPSet says NodeIP was configured; otherwise it is the bridge
	// gateway until the daemon finds the node's outbound address.
	NodeIPSet  bool
	TunnelPort int
	// ClusterBits and ClusterBitsV6 are the prefix lengths of a node subnet
	// the cluster gives (Adopt).
	ClusterBits, ClusterBitsV6 int
}

var ifnameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// Validate checks every field and returns the parsed network settings; the error
// names the offending key.
func (c Config) Validate() (Network, error) {
	var n Network
	if c.Listen == "" && c.Socket == "" {
		return n, errors.New("listen and socket are both empty: the API would be unreachable")
	}
	if err := c.APIAccess(); err != nil {
		return n, err
	}
	if (c.ClientID == "") != (c.ClusterAddress == "") {
		return n, errors.New("clientID and clusterAddress: give both (cluster mode) or neither (standalone)")
	}
	if _, err := logrus.ParseLevel(c.LogLevel); err != nil {
		return n, fmt.Errorf("logLevel: %w", err)
	}
	if !ifnameRE.MatchString(c.Bridge) {
		return n, fmt.Errorf("bridge %q: not a valid interface name (1-15 of [A-Za-z0-9_.-])", c.Bridge)
	}
	if !ifnameRE.MatchString(c.ProxyTun) || c.ProxyTun == c.Bridge {
		return n, fmt.Errorf("proxyTun %q: not a valid interface name, or the bridge's", c.ProxyTun)
	}
	if !ifnameRE.MatchString(c.PeerName) {
		return n, fmt.Errorf("peerName %q: not a valid interface name", c.PeerName)
	}
	var err error
	if n.NodeSubnet, err = parseSubnet("nodeSubnet", c.NodeSubnet, true, 30); err != nil {
		return n, err
	}
	n.Gateway = n.NodeSubnet.Addr().Next()
	if c.NodeSubnetV6 != "" {
		if n.NodeSubnetV6, err = parseSubnet("nodeSubnetV6", c.NodeSubnetV6, false, 126); err != nil {
			return n, err
		}
		if hostBits(n.NodeSubnetV6) < hostBits(n.NodeSubnet) {
			return n, fmt.Errorf("nodeSubnetV6 %s is smaller than nodeSubnet %s: every IPv4 address needs an IPv6 one", c.NodeSubnetV6, c.NodeSubnet)
		}
		n.GatewayV6 = n.NodeSubnetV6.Addr().Next()
	}
	if n.ServiceRange, err = parseSubnet("serviceRange", c.ServiceRange, true, 30); err != nil {
		return n, err
	}
	if n.ServiceRange.Overlaps(n.NodeSubnet) {
		return n, fmt.Errorf("serviceRange %s overlaps nodeSubnet %s", n.ServiceRange, n.NodeSubnet)
	}
	if c.ServiceRangeV6 != "" && n.NodeSubnetV6.IsValid() { // IPv6 off: no IPv6 service IPs either
		if n.ServiceRangeV6, err = parseSubnet("serviceRangeV6", c.ServiceRangeV6, false, 126); err != nil {
			return n, err
		}
		if n.ServiceRangeV6.Overlaps(n.NodeSubnetV6) {
			return n, fmt.Errorf("serviceRangeV6 %s overlaps nodeSubnetV6 %s", n.ServiceRangeV6, n.NodeSubnetV6)
		}
	}
	if c.MTU < 1280 || c.MTU > 65535 {
		return n, fmt.Errorf("mtu %d: must be within 1280-65535", c.MTU)
	}
	if c.TunnelPort < 1 || c.TunnelPort > 65535 {
		return n, fmt.Errorf("tunnelPort %d: must be within 1-65535", c.TunnelPort)
	}
	switch c.TCMode {
	case "auto", "tcx", "legacy":
	default:
		return n, fmt.Errorf("tcMode %q: want auto, tcx or legacy", c.TCMode)
	}
	if c.PinDir == "" || !strings.HasPrefix(c.PinDir, "/") {
		return n, fmt.Errorf("pinDir %q: must be an absolute path on a bpffs mount", c.PinDir)
	}
	n.NodeIP = n.Gateway
	if c.NodeIP != "" {
		if n.NodeIP, err = netip.ParseAddr(c.NodeIP); err != nil {
			return n, fmt.Errorf("nodeIP: %w", err)
		}
		n.NodeIPSet = true
	}
	if c.ClusterSubnetBits < 8 || c.ClusterSubnetBits > 30 {
		return n, fmt.Errorf("clusterSubnetBits %d: must be within 8-30", c.ClusterSubnetBits)
	}
	if c.ClusterSubnetBitsV6 < 64 || c.ClusterSubnetBitsV6 > 126 || 128-c.ClusterSubnetBitsV6 < 32-c.ClusterSubnetBits {
		return n, fmt.Errorf("clusterSubnetBitsV6 %d: must be within 64-126 and give at least as many addresses as clusterSubnetBits", c.ClusterSubnetBitsV6)
	}
	n.ClusterBits, n.ClusterBitsV6 = c.ClusterSubnetBits, c.ClusterSubnetBitsV6
	if err := c.SLA.validate(); err != nil {
		return n, err
	}
	if _, err := c.Interest(); err != nil {
		return n, err
	}
	if _, err := c.MQTT(); err != nil {
		return n, err
	}
	n.Bridge, n.MTU, n.PeerName, n.TunnelPort = c.Bridge, c.MTU, c.PeerName, c.TunnelPort
	if c.ClusterAddress != "" {
		if err := n.ClusterConflict(); err != nil {
			return n, fmt.Errorf("clusterAddress %s: %w", c.ClusterAddress, err)
		}
	}
	return n, nil
}

// ServiceRanges are the service ranges: IPv4, then IPv6 when on.
func (n Network) ServiceRanges() []netip.Prefix {
	r := []netip.Prefix{n.ServiceRange}
	if n.ServiceRangeV6.IsValid() {
		r = append(r, n.ServiceRangeV6)
	}
	return r
}

func hostBits(p netip.Prefix) int { return p.Addr().BitLen() - p.Bits() }

func parseSubnet(key, s string, v4 bool, maxBits int) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("%s: %w", key, err)
	}
	if p.Addr().Is4() != v4 {
		fam := "IPv6"
		if v4 {
			fam = "IPv4"
		}
		return p, fmt.Errorf("%s %s: must be an %s prefix", key, s, fam)
	}
	if p.Masked() != p {
		return p, fmt.Errorf("%s %s: host bits set (did you mean %s?)", key, s, p.Masked())
	}
	if p.Bits() > maxBits {
		return p, fmt.Errorf("%s %s: too small, at most /%d", key, s, maxBits)
	}
	return p, nil
}

// Load builds the configuration from defaults, the file named by --config (if
// any) and the flags in args, in that order of precedence (flags win).
func Load(args []string, stderr io.Writer) (Config, error) {
	c := Default()
	fs := flag.NewFlagSet("netmanager", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "path of a JSON configuration file")
	// Flags are parsed into their own values and copied over the file's only
	// when given, so an unset flag never overrides the file.
	flags := []struct {
		name, usage string
		dst         *string
	}{
		{"listen", "TCP address of the HTTP API (\"\" to disable)", &c.Listen},
		{"socket", "unix socket path of the HTTP API (\"\" to disable)", &c.Socket},
		{"token-file", "the bearer token of the API on TCP (made at first start)", &c.TokenFile},
		{"modules-dir", "directory of eBPF modules", &c.ModulesDir},
		{"state-dir", "directory for state", &c.StateDir},
		{"log-level", "log level: debug, info, warn, error", &c.LogLevel},
		{"bridge", "node bridge name", &c.Bridge},
		{"pin-dir", "bpffs directory for eBPF module pins", &c.PinDir},
		{"tc-mode", "how eBPF modules are chained: auto, tcx or legacy", &c.TCMode},
		{"client-id", "register with the cluster at start under this node id (with --cluster-address)", &c.ClientID},
		{"cluster-address", "the cluster's MQTT broker, host or host:port (default port 10003)", &c.ClusterAddress},
		{"node-ip", "the address other nodes reach this node on (default: the default route's source address)", &c.NodeIP},
		{"interest-timeout", "how long a cluster job with no instance here is followed after its last lookup (a duration)", &c.InterestTimeout},
	}
	vals := map[string]*string{}
	for _, f := range flags {
		vals[f.name] = fs.String(f.name, *f.dst, f.usage)
	}
	proxy := fs.Bool("proxy", c.Proxy, "run the user-space service proxy")
	persist := fs.Bool("persist", c.Persist, "leave services running at shutdown and re-adopt them at the next start")
	expedite := fs.Bool("expedite-attach", c.ExpediteAttach, "expedite RCU grace periods while TCX links are attached or detached (false: each waits a normal one, ~10 ms)")
	bpfStats := fs.Bool("bpf-stats", c.BPFStats, "turn on the kernel's BPF run-time statistics, for /metrics (costs every program run two clock reads)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *file != "" {
		if err := c.readFile(*file); err != nil {
			return c, err
		}
	}
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "proxy":
			c.Proxy = *proxy
		case "persist":
			c.Persist = *persist
		case "bpf-stats":
			c.BPFStats = *bpfStats
		case "expedite-attach":
			c.ExpediteAttach = *expedite
		}
		for _, f := range flags {
			if f.name == fl.Name {
				*f.dst = *vals[f.name]
			}
		}
	})
	c.LogLevel = strings.ToLower(c.LogLevel)
	return c, nil
}

func (c *Config) readFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Interest is InterestTimeout parsed.
func (c Config) Interest() (time.Duration, error) {
	d, err := time.ParseDuration(c.InterestTimeout)
	if err != nil || d < 100*time.Millisecond || d > 24*time.Hour {
		return 0, fmt.Errorf("interestTimeout %q: want a duration within 100ms-24h, e.g. 10s", c.InterestTimeout)
	}
	return d, nil
}
