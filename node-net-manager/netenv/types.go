package netenv

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// PortMapping exposes a service port on the node: traffic to HostPort on any of
// the node's own addresses is DNATed to the service's namespace address.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"` // "tcp" or "udp"
}

func (p PortMapping) String() string {
	return fmt.Sprintf("%d:%d/%s", p.HostPort, p.ContainerPort, p.Protocol)
}

// ParsePortMappings parses Oakestra's port string: entries separated by ";" or ",",
// each "[hostPort:]containerPort[/tcp|/udp]" (protocol defaults to tcp). An empty
// string is no mappings. A host port may be used once per protocol.
func ParsePortMappings(s string) ([]PortMapping, error) {
	var out []PortMapping
	seen := map[string]bool{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' }) {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		pm, err := parsePortMapping(f)
		if err != nil {
			return nil, fmt.Errorf("%w: portMappings entry %q: %v", errdefs.ErrInvalid, f, err)
		}
		key := fmt.Sprintf("%d/%s", pm.HostPort, pm.Protocol)
		if seen[key] {
			return nil, fmt.Errorf("%w: portMappings: host port %s is mapped twice", errdefs.ErrInvalid, key)
		}
		seen[key] = true
		out = append(out, pm)
	}
	return out, nil
}

func parsePortMapping(f string) (PortMapping, error) {
	pm := PortMapping{Protocol: "tcp"}
	ports, proto, hasProto := strings.Cut(f, "/")
	if hasProto {
		pm.Protocol = strings.ToLower(proto)
		if pm.Protocol != "tcp" && pm.Protocol != "udp" {
			return pm, fmt.Errorf("protocol %q is neither tcp nor udp", proto)
		}
	}
	host, cont, hasHost := strings.Cut(ports, ":")
	if !hasHost {
		cont = host
	}
	var err error
	if pm.ContainerPort, err = parsePort(cont); err != nil {
		return pm, err
	}
	pm.HostPort = pm.ContainerPort
	if hasHost {
		if pm.HostPort, err = parsePort(host); err != nil {
			return pm, err
		}
	}
	return pm, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number within 1-65535", s)
	}
	return n, nil
}

// Attachment describes one service's connection to the node bridge.
type Attachment struct {
	ServiceName string
	Instance    int
	Netns       string // path of the service's network namespace
	HostVeth    string // name of the host-side veth
	TempPeer    string // name of the peer before it moves into the namespace
	Peer        string // wanted name inside the namespace (taken if free)
	IPv4        netip.Addr
	IPv6        netip.Addr // invalid when IPv6 is off
	Ports       []PortMapping
	Unikernel   bool // also make the unikernel's virbr0, tap0 and NAT in the namespace
}

// Attached is what Attach made.
type Attached struct {
	HostIfindex int
	Peer        string // the peer's final name inside the namespace
}
