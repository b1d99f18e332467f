// Command sdwan is the control plane of the sdwan module (a Go plugin): an
// SD-WAN edge gateway after HELIOS/LINX. It gives the instance's host
// interfaces their roles (LAN, WAN i), keeps the PDR/FAR rules and the LBRs
// in the data plane's maps, probes every WAN overlay and steers classes off
// WANs that are down or break their SLA, and serves the rules over gRPC and
// its state under /ebpf/{id}/.
package main

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// SDWAN is one gateway instance.
type SDWAN struct {
	base   module.Base
	mu     sync.Mutex
	cfg    Config
	tables *tables
	rules  map[uint32]*pdr
	lbrs   map[int]*lbrClass // by class
	wans   []*wanState       // by WAN index
	ifaces module.Interfaces
	grpc   *grpcServer
	// lbrShadow is what the lbrs map holds, by class.
	lbrShadow []sdLBR
	cache     *cacheGen // the per-CPU caches' generation (nhwatch.go)
	fib       *fibWatch // started by the first Attach, in the interfaces' namespace
}

// New validates the config against the load request's interfaces, installs
// the rules and LBRs, and starts the gRPC server.
func New(base module.Base) (module.Module, error) {
	c, d, err := readConfig(base.Config)
	if err == nil {
		err = c.validateTop(d)
	}
	if err == nil {
		err = checkInterfaces(&c, d, base.HostInterfaces)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", module.ErrInvalidConfig, err)
	}
	g := &SDWAN{base: base, cfg: c, rules: map[uint32]*pdr{}, lbrs: map[int]*lbrClass{}}
	var rs []*pdr
	for i, r := range c.Rules {
		p, err := parseRule(r, &c)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", module.ErrInvalidConfig, d.errAt("%v", []any{"rules", i}, err))
		}
		rs = append(rs, p)
	}
	if err := checkRuleSet(rs); err != nil {
		return nil, fmt.Errorf("%w: %v", module.ErrInvalidConfig, d.errAt("%v", []any{"rules"}, err))
	}
	for i, l := range c.LBR {
		p, err := parseLBR(l, &c)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", module.ErrInvalidConfig, d.errAt("%v", []any{"lbr", i}, err))
		}
		if g.lbrs[p.class] != nil {
			return nil, fmt.Errorf("%w: %v", module.ErrInvalidConfig, d.errAt("a second LBR for the same class", []any{"lbr", i}))
		}
		g.lbrs[p.class] = p
	}
	for i := range c.WANs {
		g.wans = append(g.wans, newWANState(i, &g.cfg))
	}
	if g.tables, err = newTables(base.DataPlane.Maps, c.DefaultPolicy == "drop"); err != nil {
		return nil, err
	}
	if g.cache, err = newCacheGen(g.tables.m["cache"], g.tables.m["nhcache"]); err != nil {
		return nil, err
	}
	if err := g.tables.install(rs); err != nil {
		return nil, err
	}
	for _, p := range rs {
		g.rules[p.ID] = p
	}
	if err := g.writeLBRs(); err != nil {
		return nil, err
	}
	g.routes()
	if c.GRPC != "off" {
		if g.grpc, err = startGRPC(c.GRPC, g); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// checkInterfaces requires the load request's interfaces to be exactly the
// config's LAN and WAN interfaces.
func checkInterfaces(c *Config, d doc, host []string) error {
	roles := append([]string(nil), c.LAN...)
	for _, w := range c.WANs {
		roles = append(roles, w.Interface)
	}
	for i, l := range c.LAN {
		if !slices.Contains(host, l) {
			return d.errAt("interface %q is not among the load request's interfaces %v", []any{"lan", i}, l, host)
		}
	}
	for i, w := range c.WANs {
		if !slices.Contains(host, w.Interface) {
			return d.errAt("interface %q is not among the load request's interfaces %v", []any{"wans", i, "interface"}, w.Interface, host)
		}
	}
	for _, h := range host {
		if !slices.Contains(roles, h) {
			return fmt.Errorf("interfaces: %q has no role in the config (lan or wans)", h)
		}
	}
	return nil
}

// Attach gives an interface its role; a WAN learns its addresses and MTU.
func (g *SDWAN) Attach(a module.Attachment) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	idx := uint32(a.Interface.Ifindex)
	if slices.Contains(g.cfg.LAN, a.Interface.Name) {
		if err := g.tables.m["roles"].Put(idx, sdRole{Role: sdRoleLAN}); err != nil {
			return fmt.Errorf("role of %s: %w", a.Interface.Name, err)
		}
		g.ifaces.Add(a)
		return g.cachesChanged()
	}
	for i, w := range g.cfg.WANs {
		if w.Interface != a.Interface.Name {
			continue
		}
		entry, err := resolveWAN(w, a.Interface.Ifindex)
		if err != nil {
			return err
		}
		ws := g.wans[i]
		if ws.nh == nil {
			if ws.nh, err = openNexthops(); err != nil {
				return fmt.Errorf("WAN %s: %w", w.Name, err)
			}
		}
		ws.entry = entry
		ws.entry.Up = 1
		if err := g.tables.m["wans"].Put(uint32(i), ws.entry); err != nil {
			return fmt.Errorf("WAN %s: %w", w.Name, err)
		}
		if err := g.tables.m["roles"].Put(idx, sdRole{Role: sdRoleWAN, WAN: uint32(i)}); err != nil {
			return fmt.Errorf("role of %s: %w", a.Interface.Name, err)
		}
		g.ifaces.Add(a)
		if err := g.cachesChanged(); err != nil {
			return err
		}
		return ws.startProbes(g)
	}
	return fmt.Errorf("interface %s has no role in the sdwan config", a.Interface.Name)
}

// resolveWAN fills a WAN's data-plane entry from its config and interface.
func resolveWAN(w WANConfig, ifindex int) (sdWAN, error) {
	link, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return sdWAN{}, fmt.Errorf("WAN %s: %w", w.Name, err)
	}
	e := sdWAN{Ifindex: uint32(ifindex), MTU: uint32(link.Attrs().MTU), TTL: uint32(w.TTL)}
	if w.MTU != 0 {
		e.MTU = uint32(w.MTU)
	}
	local := w.Local
	if local == "" {
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if err != nil || len(addrs) == 0 {
			return sdWAN{}, fmt.Errorf("WAN %s: interface %s has no IPv4 address (set local)", w.Name, w.Interface)
		}
		local = addrs[0].IP.String()
	}
	e.Local = netip.MustParseAddr(local).As4()
	e.Peer = netip.MustParseAddr(w.Peer).As4()
	e.Nexthop = e.Peer
	if w.Nexthop != "" {
		e.Nexthop = netip.MustParseAddr(w.Nexthop).As4()
	}
	e.TOS, _ = parseOuterTOS(w.TOS)
	e.CsumBase = outerCsumBase(e.Local, e.Peer, uint8(e.TTL))
	return e, nil
}

// outerCsumBase mirrors outer4_csum_base in bpf/encap.h: the sum of the
// outer header's fixed 16-bit words as the data plane reads them (bytes in
// network order loaded little-endian).
func outerCsumBase(local, peer [4]byte, ttl uint8) uint32 {
	w := func(a, b byte) uint32 { return uint32(a) | uint32(b)<<8 }
	return w(0x40, 0) + w(ttl, 47) + w(local[0], local[1]) + w(local[2], local[3]) + w(peer[0], peer[1]) + w(peer[2], peer[3])
}

// Detach takes an interface's role away; a WAN stops carrying traffic.
// The WAN's prober is stopped first, without the lock: its reports take it.
func (g *SDWAN) Detach(a module.Attachment) error {
	for i, w := range g.cfg.WANs {
		if w.Interface == a.Interface.Name {
			g.wans[i].stopProbes()
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ifaces.Remove(a)
	var errs []error
	if err := g.tables.m["roles"].Delete(uint32(a.Interface.Ifindex)); err != nil {
		errs = append(errs, err)
	}
	for i, w := range g.cfg.WANs {
		if w.Interface == a.Interface.Name {
			g.wans[i].nh.close()
			g.wans[i].nh = nil
			g.wans[i].entry = sdWAN{}
			errs = append(errs, g.tables.m["wans"].Put(uint32(i), sdWAN{}))
		}
	}
	errs = append(errs, g.cache.bump())
	return errors.Join(errs...)
}

// cachesChanged follows a role or WAN written by Attach into the data
// plane's caches: a new generation, and the netlink watcher that keeps
// the next hops current, started in the calling thread's namespace (the
// interface's) the first time. The caller holds mu.
func (g *SDWAN) cachesChanged() error {
	if g.fib == nil {
		var err error
		if g.fib, err = watchFIB(g.cache, g.cfg.NexthopRefresh.Duration, g.base.Log); err != nil {
			return err
		}
	}
	return g.cache.bump()
}

// Close stops the gRPC server and the probes; the manager closes the maps.
func (g *SDWAN) Close() error {
	if g.grpc != nil {
		g.grpc.stop()
	}
	for _, w := range g.wans {
		w.stopProbes()
		w.nh.close()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fib.close()
	g.fib = nil
	return nil
}

// ruleList returns the rules in precedence order with their flow counts.
// The caller holds mu.
func (g *SDWAN) ruleList() ([]Rule, error) {
	flows, err := g.tables.slotFlows()
	if err != nil {
		return nil, err
	}
	out := make([]Rule, 0, len(g.rules))
	for _, p := range g.rules {
		r := p.Rule
		r.Flows = flows[p.ID]
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Precedence != out[j].Precedence {
			return out[i].Precedence < out[j].Precedence
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

var (
	_ module.NewFunc      = New
	_ module.MapSizesFunc = MapSizes
)

func main() {}
