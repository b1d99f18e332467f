package kernel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// verifierTail is how many lines of a verifier log an error quotes.
const verifierTail = 12

type dataPlane struct {
	coll   *ebpf.Collection
	ids    map[module.Hook]uint32
	reused bool
	pinDir string
}

func (d *dataPlane) Reused() bool { return d.reused }

// Release closes the maps and programs; their pins stay.
func (d *dataPlane) Release() error {
	d.coll.Close()
	return nil
}

func (d *dataPlane) SDK() *module.DataPlane {
	maps := make(map[string]*ebpf.Map, len(d.coll.Maps))
	for name, m := range d.coll.Maps {
		if !internal(name) {
			maps[name] = m
		}
	}
	return &module.DataPlane{Maps: maps, Programs: d.coll.Programs}
}

func (d *dataPlane) ProgramID(h module.Hook) (uint32, bool) {
	id, ok := d.ids[h]
	return id, ok
}

func (d *dataPlane) RunStats(h module.Hook) (ebpfmanager.RunStats, bool, error) {
	p := d.coll.Programs[h.Program()]
	if p == nil {
		return ebpfmanager.RunStats{}, false, nil
	}
	st, err := p.Stats()
	if err != nil {
		return ebpfmanager.RunStats{}, true, fmt.Errorf("stats of %s: %w", h.Program(), err)
	}
	return ebpfmanager.RunStats{Runs: st.RunCount, RunTime: st.Runtime}, true, nil
}

func (d *dataPlane) Close() error {
	var errs []error
	for name, m := range d.coll.Maps {
		if internal(name) {
			continue // never pinned
		}
		if err := m.Unpin(); err != nil {
			errs = append(errs, fmt.Errorf("unpin map %s: %w", name, err))
		}
		// A reused map was pinned by the earlier run: remove its pin by path.
		if err := os.Remove(filepath.Join(d.pinDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("unpin map %s: %w", name, err))
		}
	}
	d.coll.Close()
	return errors.Join(errs...)
}

// Load loads an object with map sizes applied and pins its maps in PinDir.
// A verifier rejection is an ErrUnprocessable quoting the log's last lines.
func (k *Kernel) Load(o ebpfmanager.LoadOptions) (_ ebpfmanager.DataPlane, err error) {
	spec, err := ebpf.LoadCollectionSpec(o.Object)
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %v", errdefs.ErrUnprocessable, filepath.Base(o.Object), err)
	}
	if err := applySizes(spec, o.MapSizes); err != nil {
		return nil, err
	}
	if err := setInstance(spec, o.Instance); err != nil {
		return nil, err
	}
	for _, h := range module.Hooks {
		if p := spec.Programs[h.Program()]; p != nil && p.Type != ebpf.SchedCLS {
			return nil, fmt.Errorf("%w: %s is a %s program, want SEC(\"tc\")", errdefs.ErrUnprocessable, h.Program(), p.Type)
		}
	}
	var opts ebpf.CollectionOptions
	if o.Reuse {
		if opts.MapReplacements, err = pinnedMaps(spec, o.PinDir); err != nil {
			return nil, err
		}
		defer func() {
			for _, m := range opts.MapReplacements {
				m.Close() // the collection holds its own reference
			}
		}()
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, opts)
	if err != nil {
		if o.Reuse && len(opts.MapReplacements) > 0 {
			return nil, fmt.Errorf("%w: the maps pinned in %s do not fit the data plane: %v", errdefs.ErrConflict, o.PinDir, err)
		}
		return nil, loadError(err)
	}
	dp := &dataPlane{coll: coll, ids: map[module.Hook]uint32{}, reused: len(opts.MapReplacements) > 0, pinDir: o.PinDir}
	defer func() {
		if err != nil && dp.reused {
			_ = dp.Release() // the earlier run's pins stay for another try
		} else if err != nil {
			_ = dp.Close()
		}
	}()
	for _, h := range module.Hooks {
		p := coll.Programs[h.Program()]
		if p == nil {
			continue
		}
		info, err := p.Info()
		if err != nil {
			return nil, fmt.Errorf("program info: %w", err)
		}
		id, _ := info.ID()
		dp.ids[h] = uint32(id)
	}
	if err := os.MkdirAll(o.PinDir, 0o700); err != nil {
		return nil, fmt.Errorf("pin dir: %w", err)
	}
	for name, m := range coll.Maps {
		if _, ok := opts.MapReplacements[name]; ok {
			continue // pinned already
		}
		if internal(name) {
			continue
		}
		if err := m.Pin(filepath.Join(o.PinDir, name)); err != nil {
			return nil, fmt.Errorf("pin map %s: %w", name, err)
		}
	}
	return dp, nil
}

// pinnedMaps opens the maps of spec an earlier run pinned in dir.
func pinnedMaps(spec *ebpf.CollectionSpec, dir string) (map[string]*ebpf.Map, error) {
	out := map[string]*ebpf.Map{}
	for name := range spec.Maps {
		if internal(name) {
			continue // .rodata: set at load (nm_instance), never an earlier run's
		}
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			continue
		}
		m, err := ebpf.LoadPinnedMap(p, nil)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("open pinned map %s: %w", p, err)
		}
		out[name] = m
	}
	return out, nil
}

// instanceVar is bpf/reasons.h's const volatile global the loader sets.
const instanceVar = "nm_instance"

// setInstance sets the object's nm_instance to the instance's id, if it has
// one (an object that does not include bpf/reasons.h has none).
func setInstance(spec *ebpf.CollectionSpec, id uint32) error {
	v := spec.Variables[instanceVar]
	if v == nil {
		return nil
	}
	if err := v.Set(id); err != nil {
		return fmt.Errorf("%w: set %s: %v", errdefs.ErrUnprocessable, instanceVar, err)
	}
	return nil
}

// internal says whether a map is an object's global data (.rodata, .data,
// .bss: libbpf names them with a dot, which bpffs refuses in a pin's name):
// not pinned, not reused (a restart's load sets nm_instance anew), not
// handed to the control plane.
func internal(name string) bool { return strings.Contains(name, ".") }

func loadError(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		lines := ve.Log
		if len(lines) > verifierTail {
			lines = lines[len(lines)-verifierTail:]
		}
		return fmt.Errorf("%w: the verifier rejected the data plane: %s:\n%s", errdefs.ErrUnprocessable, ve.Cause, strings.Join(lines, "\n"))
	}
	return fmt.Errorf("%w: load data plane: %v", errdefs.ErrUnprocessable, err)
}
