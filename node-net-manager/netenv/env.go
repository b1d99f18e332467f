package netenv

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"

	"github.com/oakestra/netmanager/node-net-manager/config"
)

// Interface aliases mark what the NetManager made, so a restart after a crash
// can tell its own leftovers from anything else on the node.
const (
	aliasBridge  = "netmanager:bridge"
	aliasService = "netmanager:svc:"
)

// Env is the real network environment of the node the daemon runs in.
type Env struct {
	net           config.Network
	stateDir      string
	persist       bool
	log           logrus.FieldLogger
	families      []ipt
	createdBridge bool
	sysctls       []sysctl
}

// Options configures an Env.
type Options struct {
	Net      config.Network
	StateDir string // where the node's original sysctl values are kept
	// Persist keeps service veths from an earlier run at Setup, for the
	// deploy manager to re-adopt, instead of removing them.
	Persist bool
	Log     logrus.FieldLogger
}

// New returns an Env; nothing is touched until Setup.
func New(o Options) *Env {
	n := o.Net
	e := &Env{net: n, stateDir: o.StateDir, persist: o.Persist, log: o.Log, families: []ipt{{bin: "iptables"}}}
	if n.NodeSubnetV6.IsValid() {
		e.families = append(e.families, ipt{bin: "ip6tables"})
	}
	return e
}

// Setup makes the node ready: stale service veths from an earlier run removed,
// the bridge with its gateway addresses, forwarding on, and the NetManager's
// iptables chains (port-mapping DNAT, masquerading, forwarding) hooked in.
// On error it undoes what it did.
func (e *Env) Setup() (err error) {
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Teardown())
		}
	}()
	if !e.persist {
		if err := e.sweepStaleVeths(); err != nil {
			return err
		}
		if err := e.removeSavedSubnet(); err != nil {
			return err
		}
	}
	if err := e.setupBridge(); err != nil {
		return err
	}
	if err := e.setupSysctls(); err != nil {
		return err
	}
	return e.setupIptables()
}

// setupSysctls turns forwarding on, remembering the values to restore: the
// saved ones if an earlier run crashed before restoring them.
func (e *Env) setupSysctls() error {
	saved, err := loadSysctlState(e.stateDir)
	if err != nil {
		return err
	}
	for _, kv := range e.wantedSysctls() {
		prev, err := setSysctl(kv[0], kv[1])
		if err != nil {
			return err
		}
		if v, ok := saved[kv[0]]; ok {
			prev = v
		}
		e.sysctls = append(e.sysctls, sysctl{key: kv[0], prev: prev})
	}
	return saveSysctlState(e.stateDir, e.sysctls)
}

func (e *Env) wantedSysctls() [][2]string {
	kv := [][2]string{{"net/ipv4/ip_forward", "1"}}
	if e.net.NodeSubnetV6.IsValid() {
		kv = append(kv, [2]string{"net/ipv6/conf/all/forwarding", "1"})
	}
	return kv
}

func (e *Env) sweepStaleVeths() error {
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Alias, aliasService) {
			e.log.WithField("veth", l.Attrs().Name).Warn("removing a service veth left over from an earlier run")
			if err := netlink.LinkDel(l); err != nil {
				return fmt.Errorf("remove stale veth %s: %w", l.Attrs().Name, err)
			}
		}
	}
	return nil
}

func (e *Env) setupBridge() error {
	l, err := netlink.LinkByName(e.net.Bridge)
	switch {
	case err == nil:
		if _, ok := l.(*netlink.Bridge); !ok {
			return fmt.Errorf("%s exists and is a %s, not a bridge", e.net.Bridge, l.Type())
		}
		// Ours from an earlier run: adopt it and remove it on teardown.
		e.createdBridge = l.Attrs().Alias == aliasBridge
	case errors.As(err, new(netlink.LinkNotFoundError)):
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU = e.net.Bridge, e.net.MTU
		// A bridge without a MAC of its own takes the lowest of its ports' and
		// changes it when that port leaves: every service's cached gateway MAC
		// would go stale on an undeploy. A fixed address keeps the gateway put.
		attrs.HardwareAddr = gatewayMAC(e.net.Gateway)
		br := &netlink.Bridge{LinkAttrs: attrs}
		if err := netlink.LinkAdd(br); err != nil {
			return fmt.Errorf("create bridge %s: %w", e.net.Bridge, err)
		}
		e.createdBridge = true
		if l, err = netlink.LinkByName(e.net.Bridge); err != nil {
			return fmt.Errorf("find bridge %s: %w", e.net.Bridge, err)
		}
		if err := netlink.LinkSetAlias(l, aliasBridge); err != nil {
			return fmt.Errorf("mark bridge %s: %w", e.net.Bridge, err)
		}
	default:
		return fmt.Errorf("find bridge %s: %w", e.net.Bridge, err)
	}
	addrs := gatewayAddrs(e.net)
	if e.net.NodeSubnetV6.IsValid() {
		// The link-local address is ours too, without duplicate address
		// detection: the kernel solicits neighbours for forwarded packets
		// (from the proxy's TUN) from it, and sends no solicitation at all
		// while it is tentative — a second and more after the first deploy.
		if err := netlink.LinkSetIP6AddrGenMode(l, addrGenModeNone); err != nil {
			return fmt.Errorf("bridge %s: turn off IPv6 address generation: %w", e.net.Bridge, err)
		}
		addrs = append(addrs, addr(linkLocal(l.Attrs().HardwareAddr), 64))
	}
	for _, a := range addrs {
		if err := netlink.AddrReplace(l, a); err != nil {
			return fmt.Errorf("address %s on %s: %w", a.IPNet, e.net.Bridge, err)
		}
	}
	if e.createdBridge { // ours: an earlier run's other subnet goes
		if err := removeStrayAddrs(l, addrs); err != nil {
			return err
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring up %s: %w", e.net.Bridge, err)
	}
	return nil
}

// gatewayMAC is a locally administered unicast MAC derived from the gateway
// address, stable across restarts.
func gatewayMAC(gw netip.Addr) net.HardwareAddr {
	a := gw.As4()
	return net.HardwareAddr{0x02, 0x6e, a[0], a[1], a[2], a[3]}
}

// linkLocal is the EUI-64 link-local address of a MAC (RFC 4291 appendix A),
// the one the kernel would have generated.
func linkLocal(mac net.HardwareAddr) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	if len(mac) == 6 {
		a[8], a[9], a[10], a[11], a[12] = mac[0]^0x02, mac[1], mac[2], 0xff, 0xfe
		a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	}
	return netip.AddrFrom16(a)
}

// addr builds a netlink address; IPv6 ones skip duplicate address detection so
// they are usable at once.
func addr(a netip.Addr, bits int) *netlink.Addr {
	na := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}}
	if a.Is6() {
		na.Flags = 0x02 // IFA_F_NODAD
	}
	return na
}

func (e *Env) setupIptables() error {
	for i, t := range e.families {
		local := "127.0.0.0/8"
		if i == 1 {
			local = "::1/128"
		}
		if err := t.ensureChain("nat", chainDNAT); err != nil {
			return err
		}
		if err := t.ensureChain("nat", chainMasq); err != nil {
			return err
		}
		if err := t.ensureChain("filter", chainForward); err != nil {
			return err
		}
		rules := [][]string{
			e.masqRule(i),
			{"filter", chainForward, "-i", e.net.Bridge, "-j", "ACCEPT"},
			{"filter", chainForward, "-o", e.net.Bridge, "-j", "ACCEPT"},
		}
		for _, r := range rules {
			if err := t.run(append([]string{"-t", r[0], "-A", r[1]}, r[2:]...)...); err != nil {
				return err
			}
		}
		jumps := []jump{
			{table: "nat", from: "PREROUTING", rule: []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", chainDNAT}},
			{table: "nat", from: "OUTPUT", rule: []string{"!", "-d", local, "-m", "addrtype", "--dst-type", "LOCAL", "-j", chainDNAT}},
			{table: "nat", from: "POSTROUTING", rule: []string{"-j", chainMasq}},
			{table: "filter", from: "FORWARD", insert: true, rule: []string{"-j", chainForward}},
		}
		for _, j := range jumps {
			if err := t.ensureRule(j.table, j.from, j.insert, j.rule...); err != nil {
				return err
			}
		}
	}
	return nil
}

// masqRule masquerades what leaves the node subnet of family i (0 IPv4, 1
// IPv6) for anywhere but the bridge; service IPs are the proxies' to
// translate, not the node's to masquerade.
func (e *Env) masqRule(i int) []string {
	subnet, svc := e.net.NodeSubnet, e.net.ServiceRange
	if i == 1 {
		subnet, svc = e.net.NodeSubnetV6, e.net.ServiceRangeV6
	}
	r := []string{"nat", chainMasq, "-s", subnet.String()}
	if svc.IsValid() {
		r = append(r, "!", "-d", svc.String())
	}
	return append(r, "!", "-o", e.net.Bridge, "-j", "MASQUERADE")
}

// setMasquerade replaces the masquerading rules with those of the current
// node subnet.
func (e *Env) setMasquerade() error {
	for i, t := range e.families {
		r := e.masqRule(i)
		if err := t.run("-t", r[0], "-F", r[1]); err != nil {
			return err
		}
		if err := t.run(append([]string{"-t", r[0], "-A", r[1]}, r[2:]...)...); err != nil {
			return err
		}
	}
	return nil
}

// Teardown removes what Setup made (the bridge only if the NetManager created
// it) and restores the sysctls it changed.
func (e *Env) Teardown() error {
	var errs []error
	for _, t := range e.families {
		for _, j := range []jump{
			{table: "filter", from: "FORWARD", rule: []string{"-j", chainForward}},
			{table: "nat", from: "POSTROUTING", rule: []string{"-j", chainMasq}},
		} {
			errs = append(errs, t.deleteRule(j.table, j.from, j.rule...))
		}
		local := "127.0.0.0/8"
		if t.bin == "ip6tables" {
			local = "::1/128"
		}
		errs = append(errs,
			t.deleteRule("nat", "OUTPUT", "!", "-d", local, "-m", "addrtype", "--dst-type", "LOCAL", "-j", chainDNAT),
			t.deleteRule("nat", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", chainDNAT),
			t.deleteChain("nat", chainDNAT), t.deleteChain("nat", chainMasq), t.deleteChain("filter", chainForward))
	}
	if e.createdBridge {
		if l, err := netlink.LinkByName(e.net.Bridge); err == nil {
			errs = append(errs, netlink.LinkDel(l))
		}
		e.createdBridge = false
	}
	var serr error
	for i := len(e.sysctls) - 1; i >= 0; i-- {
		_, err := setSysctl(e.sysctls[i].key, e.sysctls[i].prev)
		serr = errors.Join(serr, err)
	}
	if serr == nil && len(e.sysctls) > 0 {
		if err := os.Remove(filepath.Join(e.stateDir, sysctlStateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			serr = fmt.Errorf("remove saved sysctls: %w", err)
		}
	}
	errs = append(errs, serr, e.removeSavedSubnet())
	e.sysctls = nil
	return errors.Join(errs...)
}

// dnatRule is the DNAT rule spec of one port mapping to one address.
func dnatRule(a Attachment, pm PortMapping, v6 bool) []string {
	to := fmt.Sprintf("%s:%d", a.IPv4, pm.ContainerPort)
	if v6 {
		to = fmt.Sprintf("[%s]:%d", a.IPv6, pm.ContainerPort)
	}
	return []string{"-p", pm.Protocol, "--dport", fmt.Sprint(pm.HostPort),
		"-m", "comment", "--comment", "netmanager:" + a.HostVeth, "-j", "DNAT", "--to-destination", to}
}
