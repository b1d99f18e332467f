// Command dropmark is a test-only module: its data plane drops IPv4 packets
// with a configured ToS byte; its control plane can be told to panic, to prove
// that a broken module cannot take the NetManager down.
package main

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/cilium/ebpf"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// dmConfig mirrors struct dm_config in dropmark.h.
type dmConfig struct {
	TOS uint8
	Pad [3]uint8
}

// Config is the instance's configuration.
type Config struct {
	TOS           uint8  `json:"tos"`           // ToS byte to drop; 0 drops nothing
	PanicOnAttach string `json:"panicOnAttach"` // panic when attached to this service
}

// Dropper is one dropmark instance.
type Dropper struct {
	cfg     Config
	dropped *ebpf.Map
}

// New applies the config and registers GET /dropped and GET /panic.
func New(base module.Base) (module.Module, error) {
	var c Config
	if len(base.Config) > 0 && string(base.Config) != "null" {
		if err := json.Unmarshal(base.Config, &c); err != nil {
			return nil, fmt.Errorf("%w: %v", module.ErrInvalidConfig, err)
		}
	}
	if err := base.DataPlane.Maps["config"].Put(uint32(0), dmConfig{TOS: c.TOS}); err != nil {
		return nil, err
	}
	d := &Dropper{cfg: c, dropped: base.DataPlane.Maps["dropped"]}
	base.Router.HandleFunc("/dropped", d.serveDropped).Methods(http.MethodGet)
	base.Router.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("dropmark: asked to panic") })
	return d, nil
}

// Attach panics for the configured service.
func (d *Dropper) Attach(a module.Attachment) error {
	if a.Interface.Service != nil && a.Interface.Service.Name == d.cfg.PanicOnAttach {
		panic("dropmark: asked to panic on attach to " + a.Interface.Service.Name)
	}
	return nil
}

// Detach has nothing to undo.
func (d *Dropper) Detach(module.Attachment) error { return nil }

// Close has nothing to release.
func (d *Dropper) Close() error { return nil }

func (d *Dropper) serveDropped(w http.ResponseWriter, _ *http.Request) {
	var perCPU []uint64
	var total uint64
	if err := d.dropped.Lookup(uint32(0), &perCPU); err == nil {
		for _, v := range perCPU {
			total += v
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]uint64{"dropped": total})
}

var _ module.NewFunc = New

func main() {}
