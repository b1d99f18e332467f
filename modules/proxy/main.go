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
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Config is the instance's configuration; every key is optional.
type Config struct {
	ServiceRange string `json:"serviceRange"` // default 10.30.0.0/16
	MaxSessions  uint32 `json:"maxSessions"`  // default 65536 (two per flow)
	MaxServices  uint32 `json:"maxServices"`  // default 4096
}

func parseConfig(raw json.RawMessage) (Config, netip.Prefix, error) {
	c := Config{ServiceRange: "10.30.0.0/16", MaxSessions: 65536, MaxServices: 4096}
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &c); err != nil {
			return c, netip.Prefix{}, fmt.Errorf("%w: %v", module.ErrInvalidConfig, err)
		}
	}
	p, err := netip.ParsePrefix(c.ServiceRange)
	if err != nil || !p.Addr().Is4() || p.Masked() != p {
		return c, p, fmt.Errorf("%w: serviceRange %q must be an IPv4 prefix", module.ErrInvalidConfig, c.ServiceRange)
	}
	if c.MaxSessions < 2 || c.MaxServices < 1 {
		return c, p, fmt.Errorf("%w: maxSessions and maxServices must be positive", module.ErrInvalidConfig)
	}
	return c, p, nil
}

// MapSizes sets the table sizes from the config.
func MapSizes(raw json.RawMessage) (map[string]uint32, error) {
	c, _, err := parseConfig(raw)
	if err != nil {
		return nil, err
	}
	return map[string]uint32{"sessions": c.MaxSessions, "services": c.MaxServices, "rr": c.MaxServices,
		"senders": c.MaxServices, "backends": 4 * c.MaxServices}, nil
}

// Proxy is one instance.
type Proxy struct {
	mu       sync.Mutex
	base     module.Base
	rng      netip.Prefix
	maps     map[string]*ebpf.Map
	attached map[netip.Addr]local
	byIndex  map[uint32]netip.Addr
	cfgSet   bool
}

// New checks the config and registers the routes; translations follow with
// the attachments.
func New(base module.Base) (module.Module, error) {
	_, rng, err := parseConfig(base.Config)
	if err != nil {
		return nil, err
	}
	p := &Proxy{base: base, rng: rng, maps: base.DataPlane.Maps, attached: map[netip.Addr]local{}, byIndex: map[uint32]netip.Addr{}}
	for _, n := range []string{"config", "services", "backends", "senders", "rr", "sessions", "stats"} {
		if p.maps[n] == nil {
			return nil, fmt.Errorf("data plane has no map %q", n)
		}
	}
	base.Router.HandleFunc("/translations", p.serveTranslations).Methods(http.MethodGet)
	base.Router.HandleFunc("/sessions", p.serveSessions).Methods(http.MethodGet)
	base.Router.HandleFunc("/stats", p.serveStats).Methods(http.MethodGet)
	return p, nil
}

// Attach learns where a service instance is and pushes the translations.
func (p *Proxy) Attach(a module.Attachment) error {
	svc := a.Interface.Service
	if svc == nil || !svc.IPv4.IsValid() {
		return nil // host interfaces: nothing to deliver to
	}
	mac, gw, err := macs(a.Interface.Ifindex, svc.Netns)
	if err != nil {
		return fmt.Errorf("find the MACs of %s: %w", a.Interface.Name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.cfgSet {
		cfg := pxConfig{RangeAddr: p.rng.Addr().As4(), GwMAC: gw}
		copy(cfg.RangeMask[:], net.CIDRMask(p.rng.Bits(), 32))
		if err := p.maps["config"].Put(uint32(0), cfg); err != nil {
			return err
		}
		p.cfgSet = true
	}
	p.attached[svc.IPv4] = local{ifindex: uint32(a.Interface.Ifindex), mac: mac}
	p.byIndex[uint32(a.Interface.Ifindex)] = svc.IPv4
	return p.sync()
}

// Detach forgets an instance, its translations and its sessions.
func (p *Proxy) Detach(a module.Attachment) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ip, ok := p.byIndex[uint32(a.Interface.Ifindex)]
	if !ok {
		return nil
	}
	delete(p.byIndex, uint32(a.Interface.Ifindex))
	delete(p.attached, ip)
	return errors.Join(p.sync(), p.dropSessions(ip))
}

// Close has nothing to release: the manager closes the maps.
func (p *Proxy) Close() error { return nil }

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

// sync writes the translations the table and the attachments call for and
// removes stale ones; the caller holds mu.
func (p *Proxy) sync() error {
	var es []entry
	for _, e := range p.base.Services.Entries() {
		x := entry{name: e.Name, instance: e.Instance, nsIP: e.NsIP}
		for _, s := range e.ServiceIPs {
			switch s.Policy {
			case "round_robin":
				x.rrIP = s.Address
			case "instance":
				x.instIP = s.Address
			}
		}
		es = append(es, x)
	}
	t := plan(es, p.attached)
	var errs []error
	errs = append(errs, replaceAll(p.maps["services"], t.services, new([4]byte)))
	errs = append(errs, replaceAll(p.maps["backends"], t.backends, new(pxBackendKey)))
	errs = append(errs, replaceAll(p.maps["senders"], t.senders, new([4]byte)))
	for ip := range t.services {
		if err := p.maps["rr"].Update(ip, uint64(0), ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// replaceAll makes a hash map hold exactly want.
func replaceAll[K comparable, V any](m *ebpf.Map, want map[K]V, k *K) error {
	var stale []K
	var v V
	it := m.Iterate()
	for it.Next(k, &v) {
		if _, ok := want[*k]; !ok {
			stale = append(stale, *k)
		}
	}
	var errs []error
	errs = append(errs, it.Err())
	for _, s := range stale {
		errs = append(errs, m.Delete(s))
	}
	for key, val := range want {
		errs = append(errs, m.Put(key, val))
	}
	return errors.Join(errs...)
}

// dropSessions removes the sessions from or to a namespace IP; the caller holds mu.
func (p *Proxy) dropSessions(ip netip.Addr) error {
	a := ip.As4()
	var k pxFlow
	var s pxSession
	var stale []pxFlow
	it := p.maps["sessions"].Iterate()
	for it.Next(&k, &s) {
		if k.Src == a || s.NewDst == a {
			stale = append(stale, k)
		}
	}
	for _, k := range stale {
		_ = p.maps["sessions"].Delete(k)
	}
	return it.Err()
}

func addr(b [4]byte) string { return netip.AddrFrom4(b).String() }

func (p *Proxy) serveTranslations(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string][]string{}
	var k pxBackendKey
	var b pxBackend
	it := p.maps["backends"].Iterate()
	for it.Next(&k, &b) {
		out[addr(k.ServiceIP)] = append(out[addr(k.ServiceIP)], addr(b.NsIP))
	}
	for _, v := range out {
		sort.Strings(v)
	}
	module.WriteJSON(w, http.StatusOK, out)
}

// Flow is a session as the API shows it.
type Flow struct {
	Proto string `json:"proto"`
	From  string `json:"from"`
	To    string `json:"to"`
	NewTo string `json:"translatedTo"`
}

func (p *Proxy) serveSessions(w http.ResponseWriter, _ *http.Request) {
	const limit = 100
	var k pxFlow
	var s pxSession
	var flows []Flow
	n := 0
	it := p.maps["sessions"].Iterate()
	for it.Next(&k, &s) {
		n++
		if len(flows) < limit {
			proto := map[uint8]string{1: "icmp", 6: "tcp", 17: "udp"}[k.Proto]
			port := func(b [2]byte) string { return fmt.Sprint(int(b[0])<<8 | int(b[1])) }
			flows = append(flows, Flow{Proto: proto, From: addr(k.Src) + ":" + port(k.Sport), To: addr(k.Dst) + ":" + port(k.Dport),
				NewTo: addr(s.NewDst) + " from " + addr(s.NewSrc)})
		}
	}
	sort.Slice(flows, func(i, j int) bool { return strings.Compare(flows[i].From, flows[j].From) < 0 })
	module.WriteJSON(w, http.StatusOK, map[string]any{"count": n, "listed": len(flows), "sessions": flows})
}

func (p *Proxy) serveStats(w http.ResponseWriter, _ *http.Request) {
	out := map[string]uint64{}
	for i, name := range statNames {
		var perCPU []uint64
		if err := p.maps["stats"].Lookup(uint32(i), &perCPU); err != nil {
			module.WriteError(w, http.StatusInternalServerError, err)
			return
		}
		for _, v := range perCPU {
			out[name] += v
		}
	}
	module.WriteJSON(w, http.StatusOK, out)
}

var (
	_ module.NewFunc      = New
	_ module.MapSizesFunc = MapSizes
)

func main() {}
