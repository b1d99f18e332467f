// Command packetcounter is the control plane of the packetcounter module (a
// Go plugin): it reports the packets and bytes its data plane counted per
// interface and direction at GET /ebpf/{id}/counts.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/cilium/ebpf"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// pcKey mirrors struct pc_key in packetcounter.h.
type pcKey struct {
	Ifindex uint32
	Hook    uint32
}

// pcValue mirrors struct pc_value in packetcounter.h.
type pcValue struct {
	Packets uint64
	Bytes   uint64
}

// Config is the instance's configuration; every key is optional.
type Config struct {
	// MaxInterfaces sizes the counter map (two entries per interface).
	MaxInterfaces uint32 `json:"maxInterfaces"`
}

const defaultMaxInterfaces = 512

func parseConfig(raw json.RawMessage) (Config, error) {
	c := Config{MaxInterfaces: defaultMaxInterfaces}
	if len(raw) == 0 || string(raw) == "null" {
		return c, nil
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("%w: %v", module.ErrInvalidConfig, err)
	}
	if c.MaxInterfaces == 0 || c.MaxInterfaces > 1<<20 {
		return c, fmt.Errorf("%w: maxInterfaces %d must be within 1-%d", module.ErrInvalidConfig, c.MaxInterfaces, 1<<20)
	}
	return c, nil
}

// MapSizes sizes the counter map from the config.
func MapSizes(raw json.RawMessage) (map[string]uint32, error) {
	c, err := parseConfig(raw)
	if err != nil {
		return nil, err
	}
	return map[string]uint32{"counts": 2 * c.MaxInterfaces}, nil
}

// Counter is one packetcounter instance.
type Counter struct {
	counts *ebpf.Map
	ifaces module.Interfaces
}

// New creates an instance and registers its routes.
func New(base module.Base) (module.Module, error) {
	if _, err := parseConfig(base.Config); err != nil {
		return nil, err
	}
	m := base.DataPlane.Maps["counts"]
	if m == nil {
		return nil, errors.New("data plane has no map \"counts\"")
	}
	c := &Counter{counts: m}
	base.Router.HandleFunc("/counts", c.serveCounts).Methods(http.MethodGet)
	return c, nil
}

// Attach starts reporting an interface.
func (c *Counter) Attach(a module.Attachment) error {
	c.ifaces.Add(a)
	return nil
}

// Detach forgets an interface and its counters.
func (c *Counter) Detach(a module.Attachment) error {
	c.ifaces.Remove(a)
	var errs []error
	for _, h := range module.Hooks {
		err := c.counts.Delete(pcKey{Ifindex: uint32(a.Interface.Ifindex), Hook: uint32(h)})
		if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close has nothing to release: the manager closes the maps.
func (c *Counter) Close() error { return nil }

// Totals is the count of one direction.
type Totals struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Counts reports every attached interface by name. Directions are named from
// the service's point of view on service veths ("ingress" = to the service)
// and by the interface's own hooks on host interfaces.
func (c *Counter) Counts() (map[string]map[string]Totals, error) {
	all, err := c.readAll()
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]Totals{}
	for _, ifc := range c.ifaces.List() {
		dirs := map[string]Totals{}
		for _, h := range module.Hooks {
			dirs[ifc.DirectionName(h)] = all[pcKey{Ifindex: uint32(ifc.Ifindex), Hook: uint32(h)}]
		}
		out[ifc.Name] = dirs
	}
	return out, nil
}

// readAll sums every entry's per-CPU counters.
func (c *Counter) readAll() (map[pcKey]Totals, error) {
	out := map[pcKey]Totals{}
	err := module.ReadPerCPU(c.counts, func(k pcKey, vs []pcValue) {
		var t Totals
		for _, v := range vs {
			t.Packets += v.Packets
			t.Bytes += v.Bytes
		}
		out[k] = t
	})
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	return out, nil
}

func (c *Counter) serveCounts(w http.ResponseWriter, _ *http.Request) {
	counts, err := c.Counts()
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(counts)
}

// The plugin's exported symbols must have the SDK's signatures.
var (
	_ module.NewFunc      = New
	_ module.MapSizesFunc = MapSizes
)

func main() {}
