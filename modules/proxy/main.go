// Command proxy is the control plane of the eBPF proxy module (a Go plugin):
// it pushes the translations of every service with an instance on this node
// into the data plane, keeps them current as services come and go, and reports
// translations, sessions and stats under /ebpf/{id}.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Config is the instance's configuration; every key is optional.
type Config struct {
	// The service ranges default to the node's (module.Base.ServiceRanges),
	// or to 10.30.0.0/16 and fdff::/16 where the node gives none.
	ServiceRange   string `json:"serviceRange"`
	ServiceRangeV6 string `json:"serviceRangeV6"`
	// MaxSessions sizes the IPv4 session table, MaxSessionsV6 the IPv6 one
	// (default: as MaxSessions): entries, two per flow, at most
	// maxSessionsLimit.
	MaxSessions   uint32  `json:"maxSessions"` // default 65536
	MaxSessionsV6 *uint32 `json:"maxSessionsV6"`
	MaxServices   uint32  `json:"maxServices"` // default 4096 per address family
	// MissRingBytes sizes the ring buffer of miss events (a power of two, at
	// least a page); MissRateEntries the service IPs whose last event time
	// the rate limit remembers.
	MissRingBytes   uint32 `json:"missRingBytes"`   // default 65536
	MissRateEntries uint32 `json:"missRateEntries"` // default 4096
	// MaxPeers is how many other nodes the inter-node tunnel keeps
	// counters for (and takes datagrams from).
	MaxPeers uint32 `json:"maxPeers"` // default 1024
}

// maxSessionsLimit bounds maxSessions and maxSessionsV6: 8,388,608 entries
// hold four million flows in about 1 GB of kernel memory for IPv4, 1.3 GB
// for IPv6 (README: 128 and 168 bytes per entry, from the kernel). A larger value is more
// likely a typo than a plan, and the kernel would allocate all of it at load.
const maxSessionsLimit = 1 << 23

// settings is a validated Config.
type settings struct {
	Config
	rng, rng6 netip.Prefix
	sessions6 uint32 // MaxSessionsV6 or its default
}

// parseConfig validates a config; the service ranges default to the node's.
func parseConfig(raw json.RawMessage, node []netip.Prefix) (settings, error) {
	s := settings{Config: Config{ServiceRange: "10.30.0.0/16", ServiceRangeV6: "fdff::/16", MaxSessions: 65536, MaxServices: 4096,
		MissRingBytes: 65536, MissRateEntries: 4096, MaxPeers: 1024}}
	for _, r := range node {
		if r.Addr().Is4() {
			s.ServiceRange = r.String()
		} else {
			s.ServiceRangeV6 = r.String()
		}
	}
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &s.Config); err != nil {
			return s, fmt.Errorf("%w: %v", module.ErrInvalidConfig, err)
		}
	}
	var err error
	s.rng, err = netip.ParsePrefix(s.ServiceRange)
	if err != nil || !s.rng.Addr().Is4() || s.rng.Masked() != s.rng {
		return s, fmt.Errorf("%w: serviceRange %q must be a masked IPv4 prefix, e.g. 10.30.0.0/16", module.ErrInvalidConfig, s.ServiceRange)
	}
	s.rng6, err = netip.ParsePrefix(s.ServiceRangeV6)
	if err != nil || !s.rng6.Addr().Is6() || s.rng6.Addr().Is4In6() || s.rng6.Masked() != s.rng6 {
		return s, fmt.Errorf("%w: serviceRangeV6 %q must be a masked IPv6 prefix, e.g. fdff:2000::/64", module.ErrInvalidConfig, s.ServiceRangeV6)
	}
	s.sessions6 = s.MaxSessions
	if s.MaxSessionsV6 != nil {
		s.sessions6 = *s.MaxSessionsV6
	}
	return s, checkSizes(s)
}

// checkSizes refuses a table size out of range, naming its key.
func checkSizes(s settings) error {
	for _, c := range []struct {
		key string
		v   uint32
	}{{"maxSessions", s.MaxSessions}, {"maxSessionsV6", s.sessions6}} {
		if c.v < 2 || c.v > maxSessionsLimit {
			return fmt.Errorf("%w: %s %d is out of range: 2 to %d session entries (two per flow)", module.ErrInvalidConfig, c.key, c.v, maxSessionsLimit)
		}
	}
	for _, c := range []struct {
		key string
		v   uint32
	}{{"maxServices", s.MaxServices}, {"missRateEntries", s.MissRateEntries}, {"maxPeers", s.MaxPeers}} {
		if c.v < 1 {
			return fmt.Errorf("%w: %s must be positive", module.ErrInvalidConfig, c.key)
		}
	}
	if r := s.MissRingBytes; r < uint32(os.Getpagesize()) || r&(r-1) != 0 {
		return fmt.Errorf("%w: missRingBytes %d must be a power of two of at least %d", module.ErrInvalidConfig, r, os.Getpagesize())
	}
	return nil
}

// configValue is the data plane's config entry.
func configValue(rng, rng6 netip.Prefix, gw [6]byte) pxConfig {
	c := pxConfig{RangeAddr: rng.Addr().As4(), GwMAC: gw, Range6Addr: rng6.Addr().As16()}
	copy(c.RangeMask[:], net.CIDRMask(rng.Bits(), 32))
	copy(c.Range6Mask[:], net.CIDRMask(rng6.Bits(), 128))
	return c
}

// MapSizes sets the table sizes from the config.
func MapSizes(raw json.RawMessage) (map[string]uint32, error) {
	c, err := parseConfig(raw, nil)
	if err != nil {
		return nil, err
	}
	sizes := map[string]uint32{"misses": c.MissRingBytes, "miss_limit": c.MissRateEntries, "peers": c.MaxPeers, "nexthops": c.MaxPeers}
	sizes["sessions"], sizes["sessions6"] = c.MaxSessions, c.sessions6
	for _, sfx := range []string{"", "6"} {
		sizes["services"+sfx] = c.MaxServices
		sizes["rr"+sfx] = c.MaxServices
		sizes["senders"+sfx] = c.MaxServices
		sizes["backends"+sfx] = 4 * c.MaxServices
		sizes["remotes"+sfx] = c.MaxServices
		sizes["locals"+sfx] = c.MaxServices
	}
	return sizes, nil
}

// mapNames are the maps the control plane uses.
var mapNames = []string{"config", "stats", "misses",
	"services", "backends", "senders", "rr", "sessions",
	"services6", "backends6", "senders6", "rr6", "sessions6",
	"peers", "remotes", "remotes6", "locals", "locals6", "nexthops"}

// Proxy is one instance.
type Proxy struct {
	mu        sync.Mutex
	base      module.Base
	cfg       settings
	maps      map[string]*ebpf.Map
	attached  map[netip.Addr]local // by IPv4 namespace address
	byIndex   map[uint32]netip.Addr
	conf      pxConfig          // what the config map holds
	gwSet     bool              // conf has the bridge's MAC
	underlay  *module.Interface // the host interface the tunnel is on; nil: no kernel tunnel
	last      *translations     // what the last whole sync wrote; nil: unknown (sync.go)
	batching  bool              // inside a batch: Attach leaves the sync to EndBatch
	peerScans int               // session scans for peers (withSessionPeers), for tests

	reader     *ringbuf.Reader // misses; nil once closed
	readerDone chan struct{}   // closed when the reader's goroutine ends
	counters   missCounters
	stopFlush  func() // ends the next-hop cache's flushing; nil if not started
}

// New checks the config, registers the routes and starts reading miss
// events; translations follow with the attachments.
func New(base module.Base) (module.Module, error) {
	p, err := newProxy(base)
	if err != nil {
		return nil, err
	}
	if err := p.startMisses(); err != nil {
		return nil, err
	}
	p.stopFlush = p.flushNexthops(nexthopTTL)
	return p, nil
}

// newProxy is New without the miss reader.
func newProxy(base module.Base) (*Proxy, error) {
	cfg, err := parseConfig(base.Config, base.ServiceRanges)
	if err != nil {
		return nil, err
	}
	if err := checkTunnel(base); err != nil {
		return nil, err
	}
	p := &Proxy{base: base, cfg: cfg, maps: base.DataPlane.Maps, attached: map[netip.Addr]local{}, byIndex: map[uint32]netip.Addr{},
		conf: configValue(cfg.rng, cfg.rng6, [6]byte{})}
	for _, n := range mapNames {
		if p.maps[n] == nil {
			return nil, fmt.Errorf("data plane has no map %q", n)
		}
	}
	if base.Readopted { // go on from what the data plane has (the tunnel included) until the attachments are back
		_ = p.maps["config"].Lookup(uint32(0), &p.conf)
	}
	base.Router.HandleFunc("/translations", p.serveTranslations).Methods(http.MethodGet)
	base.Router.HandleFunc("/sessions", p.serveSessions).Methods(http.MethodGet)
	base.Router.HandleFunc("/stats", p.serveStats).Methods(http.MethodGet)
	base.Router.HandleFunc("/peers", p.servePeers).Methods(http.MethodGet)
	return p, nil
}

// Attach learns where a service instance is and pushes the translations;
// on the underlay (the host interface), it starts the kernel tunnel.
func (p *Proxy) Attach(a module.Attachment) error {
	svc := a.Interface.Service
	if svc == nil {
		return p.attachUnderlay(a.Interface)
	}
	if !svc.IPv4.IsValid() {
		return nil // nothing to deliver to
	}
	mac, gw, err := macs(a.Interface.Ifindex, svc.Netns)
	if err != nil {
		return fmt.Errorf("find the MACs of %s: %w", a.Interface.Name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.gwSet {
		c := p.conf
		c.GwMAC = gw
		if err := p.writeConfig(c); err != nil {
			return err
		}
		p.gwSet = true
	}
	p.attached[svc.IPv4] = local{ifindex: uint32(a.Interface.Ifindex), mac: mac, nsIP6: svc.IPv6}
	p.byIndex[uint32(a.Interface.Ifindex)] = svc.IPv4
	if p.batching {
		return nil // EndBatch syncs
	}
	return p.sync()
}

// BeginBatch starts a batch of attaches (module.Batcher): the eBPF Manager
// is loading the proxy onto many services. A sync reads the whole service
// table and plans every translation, so one per attach made a load onto N
// services cost O(N²); in a batch Attach only records the instance.
func (p *Proxy) BeginBatch() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.batching = true
}

// EndBatch pushes the translations of every instance the batch attached.
func (p *Proxy) EndBatch() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.batching = false
	return p.sync()
}

// Detach forgets an instance, its translations and its sessions; on the
// underlay, it stops the kernel tunnel.
func (p *Proxy) Detach(a module.Attachment) error {
	if a.Interface.Service == nil {
		return p.detachUnderlay(a.Interface)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ip, ok := p.byIndex[uint32(a.Interface.Ifindex)]
	if !ok {
		return nil
	}
	l := p.attached[ip]
	delete(p.byIndex, uint32(a.Interface.Ifindex))
	delete(p.attached, ip)
	return errors.Join(p.sync(), p.dropSessions(ip, l.nsIP6))
}

// ServicesChanged pushes the translations the changed table calls for (in
// cluster mode, the cluster's answer about a job; module.ServicesWatcher).
func (p *Proxy) ServicesChanged() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sync()
}

// Close stops the miss reader and the next-hop flushing (before the
// manager closes the maps).
func (p *Proxy) Close() error {
	if p.stopFlush != nil {
		p.stopFlush()
		p.stopFlush = nil
	}
	return p.stopMisses()
}

// macs returns the MAC of a host veth's peer inside its namespace and the MAC
// of the bridge the host veth is on.
func macs(ifindex int, nsPath string) (peer, gw [6]byte, err error) {
	host, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return peer, gw, err
	}
	br, err := netlink.LinkByIndex(host.Attrs().MasterIndex)
	if err != nil {
		return peer, gw, fmt.Errorf("bridge of %s: %w", host.Attrs().Name, err)
	}
	copy(gw[:], br.Attrs().HardwareAddr)
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return peer, gw, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return peer, gw, err
	}
	defer h.Close()
	l, err := h.LinkByIndex(host.Attrs().ParentIndex)
	if err != nil {
		return peer, gw, fmt.Errorf("peer of %s: %w", host.Attrs().Name, err)
	}
	copy(peer[:], l.Attrs().HardwareAddr)
	return peer, gw, nil
}

var (
	_ module.Batcher      = (*Proxy)(nil)
	_ module.NewFunc      = New
	_ module.MapSizesFunc = MapSizes
)

func main() {}
