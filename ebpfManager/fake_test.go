package ebpfmanager

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// fakeKernel models the chain invariants the manager relies on: TCX anchors
// place a program before/after another or at the tail and a stale revision is
// refused; legacy filters run in ascending priority and a priority is used once
// per hook; closing a link removes exactly that program; a data plane's pins
// exist from Load until Close.
type fakeKernel struct {
	mu       sync.Mutex
	mode     Mode
	nextProg uint32
	chains   map[chainKey][]fakeEntry
	revs     map[chainKey]uint64
	pins     map[string]bool
	linkPins map[string]*fakeLink // pinned links by path: they outlive a run that releases them
	hosts    map[string]int
	objects  map[string][]module.Hook // hooks an object defines; default both
	failLoad map[string]error
	bumpOnce bool // make the next Attach see a changed chain
	bumped   int
	runs     map[uint32]RunStats // what RunStats reports, by program ID
	needs    map[string][]Need   // what an object needs, by path; default nothing
	badObj   map[string]error    // objects Needs cannot read
	lacks    map[string]bool     // features the kernel lacks
	unsure   map[string]bool     // features whose probe cannot tell
	probed   map[string]int      // probes asked, by feature
	mapBytes map[string]uint64   // MapBytes of an object, by path; default 1000

	// foreign are programs not the manager's (addForeign), by ID.
	foreign map[uint32]ProgramInfo
}

type chainKey struct {
	ifindex int
	hook    module.Hook
}

type fakeEntry struct {
	prog uint32
	prio uint16
}

func newFakeKernel(mode Mode) *fakeKernel {
	return &fakeKernel{mode: mode, nextProg: 100, chains: map[chainKey][]fakeEntry{}, revs: map[chainKey]uint64{},
		pins: map[string]bool{}, linkPins: map[string]*fakeLink{}, hosts: map[string]int{"eth9": 9}, objects: map[string][]module.Hook{}, failLoad: map[string]error{}, runs: map[uint32]RunStats{},
		needs: map[string][]Need{}, badObj: map[string]error{}, lacks: map[string]bool{}, unsure: map[string]bool{}, probed: map[string]int{},
		mapBytes: map[string]uint64{}}
}

func (k *fakeKernel) Mode() Mode { return k.mode }

type fakeDP struct {
	k      *fakeKernel
	progs  map[module.Hook]uint32
	pin    string
	reused bool
	sdk    *module.DataPlane // what SDK returns when set (real maps, e.g. nm_drops)
}

func (d *fakeDP) SDK() *module.DataPlane {
	if d.sdk != nil {
		return d.sdk
	}
	return &module.DataPlane{}
}
func (d *fakeDP) ProgramID(h module.Hook) (uint32, bool) {
	id, ok := d.progs[h]
	return id, ok
}
func (d *fakeDP) RunStats(h module.Hook) (RunStats, bool, error) {
	id, ok := d.progs[h]
	if !ok {
		return RunStats{}, false, nil
	}
	d.k.mu.Lock()
	defer d.k.mu.Unlock()
	return d.k.runs[id], true, nil
}
func (d *fakeDP) Close() error {
	d.k.mu.Lock()
	defer d.k.mu.Unlock()
	delete(d.k.pins, d.pin)
	return nil
}

// Release keeps the pins, as a daemon that exits with persist does.
func (d *fakeDP) Release() error { return nil }
func (d *fakeDP) Reused() bool   { return d.reused }

func (k *fakeKernel) Load(opts LoadOptions) (DataPlane, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.failLoad[opts.Object]; err != nil {
		return nil, err
	}
	hooks, ok := k.objects[opts.Object]
	if !ok {
		hooks = module.Hooks
	}
	d := &fakeDP{k: k, progs: map[module.Hook]uint32{}, pin: opts.PinDir, reused: opts.Reuse && k.pins[opts.PinDir]}
	for _, h := range hooks {
		k.nextProg++
		d.progs[h] = k.nextProg
	}
	k.pins[opts.PinDir] = true
	return d, nil
}

// Needs reports what the test said the object needs; a path that does not
// exist is an error, as reading it would be.
func (k *fakeKernel) Needs(object string) ([]Need, error) {
	if _, err := os.Stat(object); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.badObj[object]; err != nil {
		return nil, err
	}
	return slices.Clone(k.needs[object]), nil
}

// MapBytes reports what the test set for the object (1000 by default), plus
// 8 bytes per entry a size asks for.
func (k *fakeKernel) MapBytes(object string, sizes map[string]uint32) (uint64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	b, ok := k.mapBytes[object]
	if !ok {
		b = 1000
	}
	for _, n := range sizes {
		b += 8 * uint64(n)
	}
	return b, nil
}

// Probe answers from the chosen feature set: everything but lacks, and
// unsure features cannot be told.
func (k *fakeKernel) Probe(needs []Need) []Probe {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]Probe, len(needs))
	for i, n := range needs {
		k.probed[n.Feature]++
		switch {
		case k.unsure[n.Feature]:
			out[i] = Probe{Err: errors.New("probe could not tell")}
		default:
			out[i] = Probe{Have: !k.lacks[n.Feature]}
		}
	}
	return out
}

func (k *fakeKernel) Ifindex(name string) (int, error) {
	if idx, ok := k.hosts[name]; ok {
		return idx, nil
	}
	return 0, fmt.Errorf("link %s not found", name)
}

func (k *fakeKernel) Chain(ifindex int, h module.Hook) ([]uint32, uint64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ck := chainKey{ifindex, h}
	var ids []uint32
	for _, e := range k.chains[ck] {
		ids = append(ids, e.prog)
	}
	return ids, k.revs[ck], nil
}

// ProgramInfo describes a foreign program (addForeign) or one of a data
// plane's ("prog_N"); an ID nothing has is gone.
func (k *fakeKernel) ProgramInfo(id uint32) (ProgramInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if pi, ok := k.foreign[id]; ok {
		return pi, nil
	}
	for _, c := range k.chains {
		if slices.ContainsFunc(c, func(e fakeEntry) bool { return e.prog == id }) {
			return ProgramInfo{ID: id, Name: fmt.Sprintf("prog_%d", id), Tag: "0000000000000000", Type: "SchedCLS"}, nil
		}
	}
	return ProgramInfo{}, fmt.Errorf("%w: program %d is gone", errdefs.ErrNotFound, id)
}

// addForeign puts another agent's program at position pos of a hook's
// chain (clamped to its length) and returns its ID.
func (k *fakeKernel) addForeign(ifindex int, h module.Hook, pos int, name string) uint32 {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.nextProg++
	id := k.nextProg
	if k.foreign == nil {
		k.foreign = map[uint32]ProgramInfo{}
	}
	k.foreign[id] = ProgramInfo{ID: id, Name: name, Tag: fmt.Sprintf("%016x", id), Type: "SchedCLS"}
	ck := chainKey{ifindex, h}
	c := k.chains[ck]
	k.chains[ck] = slices.Insert(c, min(pos, len(c)), fakeEntry{prog: id})
	k.revs[ck]++
	return id
}

// removeProgram takes a program off a hook's chain (as another agent's
// detach, or a detach behind the manager's back, would).
func (k *fakeKernel) removeProgram(ifindex int, h module.Hook, id uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ck := chainKey{ifindex, h}
	k.chains[ck] = slices.DeleteFunc(k.chains[ck], func(e fakeEntry) bool { return e.prog == id })
	k.revs[ck]++
}

type fakeLink struct {
	k       *fakeKernel
	ck      chainKey
	prog    uint32
	pin     string
	adopted bool
}

func (l *fakeLink) Adopted() bool { return l.adopted }

// Release leaves the program attached and the link pinned.
func (l *fakeLink) Release() error { return nil }

// Repin moves the link's pin.
func (l *fakeLink) Repin(path string) error {
	l.k.mu.Lock()
	defer l.k.mu.Unlock()
	delete(l.k.linkPins, l.pin)
	l.pin = path
	l.k.linkPins[path] = l
	return nil
}

func (l *fakeLink) Close() error {
	l.k.mu.Lock()
	defer l.k.mu.Unlock()
	delete(l.k.linkPins, l.pin)
	c := l.k.chains[l.ck]
	i := slices.IndexFunc(c, func(e fakeEntry) bool { return e.prog == l.prog })
	if i < 0 {
		return errors.New("link already closed")
	}
	l.k.chains[l.ck] = slices.Delete(c, i, i+1)
	l.k.revs[l.ck]++
	return nil
}

func (k *fakeKernel) Attach(req AttachRequest) (Link, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ck := chainKey{req.Ifindex, req.Hook}
	prog, ok := req.DataPlane.ProgramID(req.Hook)
	if !ok {
		return nil, errors.New("no program for hook")
	}
	if k.bumpOnce {
		k.bumpOnce = false
		k.bumped++
		k.revs[ck]++
	}
	c := k.chains[ck]
	if old, ok := k.linkPins[req.PinPath]; ok && req.Adopt && req.PinPath != "" && old.ck == ck {
		// The earlier run's program is swapped for this one in its place.
		i := slices.IndexFunc(c, func(e fakeEntry) bool { return e.prog == old.prog })
		c[i].prog = prog
		l := &fakeLink{k: k, ck: ck, prog: prog, pin: req.PinPath, adopted: true}
		k.linkPins[req.PinPath] = l
		return l, nil
	}
	e := fakeEntry{prog: prog, prio: req.Place.Priority}
	if k.mode == ModeLegacy {
		if req.Place.Priority == 0 {
			return nil, errors.New("legacy attach without a priority")
		}
		i := 0
		for i < len(c) && c[i].prio <= e.prio {
			if c[i].prio == e.prio {
				return nil, errors.New("file exists")
			}
			i++
		}
		c = slices.Insert(c, i, e)
	} else {
		if req.Place.Revision != 0 && req.Place.Revision != k.revs[ck] {
			return nil, ErrChainChanged
		}
		idx := func(id uint32) int { return slices.IndexFunc(c, func(e fakeEntry) bool { return e.prog == id }) }
		switch req.Place.Anchor {
		case AnchorTail:
			c = append(c, e)
		case AnchorBefore:
			i := idx(req.Place.ProgID)
			if i < 0 {
				return nil, errors.New("anchor not found")
			}
			c = slices.Insert(c, i, e)
		case AnchorAfter:
			i := idx(req.Place.ProgID)
			if i < 0 {
				return nil, errors.New("anchor not found")
			}
			c = slices.Insert(c, i+1, e)
		}
	}
	k.chains[ck] = c
	k.revs[ck]++
	l := &fakeLink{k: k, ck: ck, prog: prog, pin: req.PinPath}
	if req.PinPath != "" {
		k.linkPins[req.PinPath] = l
	}
	return l, nil
}

// Pins lists the direct children of dir among the pins: data plane map
// directories and pinned links.
func (k *fakeKernel) Pins(dir string) ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		rest, ok := strings.CutPrefix(p, dir+"/")
		if !ok {
			return
		}
		name, _, _ := strings.Cut(rest, "/")
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	for p := range k.pins {
		add(p)
	}
	for p := range k.linkPins {
		add(p)
	}
	if es, err := os.ReadDir(dir); err == nil { // real leftovers, as a test makes them
		for _, e := range es {
			add(filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}

// Unpin removes a pin; a pinned link goes from its chain with it. The pin
// directory itself is a real one (the tests check it is gone).
func (k *fakeKernel) Unpin(path string) error {
	k.mu.Lock()
	l := k.linkPins[path]
	delete(k.pins, path)
	k.mu.Unlock()
	if l != nil {
		return l.Close()
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (k *fakeKernel) MakePinDir(dir string) error { return os.MkdirAll(dir, 0o700) }

// RemovePins removes every pin under dir; pinned links go from their chains.
func (k *fakeKernel) RemovePins(dir string) error {
	k.mu.Lock()
	var links []*fakeLink
	for p, l := range k.linkPins {
		if strings.HasPrefix(p, dir+"/") {
			links = append(links, l)
		}
	}
	for p := range k.pins {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			delete(k.pins, p)
		}
	}
	k.mu.Unlock()
	for _, l := range links {
		_ = l.Close()
	}
	return os.RemoveAll(dir)
}

// programs returns the chain of an interface hook.
func (k *fakeKernel) programs(ifindex int, h module.Hook) []uint32 {
	ids, _, _ := k.Chain(ifindex, h)
	return ids
}

// leftovers lists attached programs and pins.
func (k *fakeKernel) leftovers() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for ck, c := range k.chains {
		for _, e := range c {
			out = append(out, fmt.Sprintf("prog %d on %d/%s", e.prog, ck.ifindex, ck.hook))
		}
	}
	for p := range k.pins {
		out = append(out, "pin "+p)
	}
	return out
}

// fakeModule records the calls a control plane receives.
type fakeModule struct {
	mu       sync.Mutex
	calls    []string
	panicOn  string // "Attach", "Detach", "Close", "handler"
	failOn   string
	attached map[string]bool
	ranges   []netip.Prefix // the service ranges New was given
	hostIfs  []string       // the host interfaces New was given
	base     module.Base    // what New was given
}

func (f *fakeModule) record(call string) error {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
	name, _, _ := strings.Cut(call, " ")
	if f.panicOn == name {
		panic("fake module panic in " + name)
	}
	if f.failOn == name {
		return errors.New("fake module refuses " + name)
	}
	return nil
}

func (f *fakeModule) Attach(a module.Attachment) error {
	if err := f.record("Attach " + a.Interface.Name); err != nil {
		return err
	}
	f.mu.Lock()
	f.attached[a.Interface.Name] = true
	f.mu.Unlock()
	return nil
}

func (f *fakeModule) Detach(a module.Attachment) error {
	f.mu.Lock()
	delete(f.attached, a.Interface.Name)
	f.mu.Unlock()
	return f.record("Detach " + a.Interface.Name)
}

func (f *fakeModule) Close() error { return f.record("Close") }

// ServicesChanged makes every fake module a module.ServicesWatcher.
func (f *fakeModule) ServicesChanged() error { return f.record("ServicesChanged") }

// fakeBatcher is a fakeModule that is a module.Batcher.
type fakeBatcher struct{ *fakeModule }

func (f fakeBatcher) BeginBatch()     { _ = f.record("BeginBatch") }
func (f fakeBatcher) EndBatch() error { return f.record("EndBatch") }

// fakePlugins maps a .so path to its behaviour.
type fakePlugins struct {
	mu      sync.Mutex
	openErr map[string]error
	newErr  map[string]error
	mods    map[string][]*fakeModule // instances created per module name
	panicOn map[string]string        // module name -> call that panics
	failOn  map[string]string
	sizes   map[string]module.MapSizesFunc // a module's MapSizes, by name; default none
	batch   map[string]bool                // modules whose control planes are module.Batchers
}

func newFakePlugins() *fakePlugins {
	return &fakePlugins{openErr: map[string]error{}, newErr: map[string]error{}, mods: map[string][]*fakeModule{},
		panicOn: map[string]string{}, failOn: map[string]string{}, sizes: map[string]module.MapSizesFunc{}, batch: map[string]bool{}}
}

func (p *fakePlugins) Stat(path string) (fs.FileInfo, error) { return os.Stat(path) }

func (p *fakePlugins) Open(path string) (module.NewFunc, module.MapSizesFunc, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.openErr[path]; err != nil {
		return nil, nil, err
	}
	newFn := func(base module.Base) (module.Module, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if err := p.newErr[base.Name]; err != nil {
			return nil, err
		}
		if p.panicOn[base.Name] == "New" {
			panic("fake New panic")
		}
		f := &fakeModule{panicOn: p.panicOn[base.Name], failOn: p.failOn[base.Name], attached: map[string]bool{}, ranges: base.ServiceRanges, hostIfs: base.HostInterfaces, base: base}
		base.Router.HandleFunc("/state", func(w http.ResponseWriter, _ *http.Request) {
			if f.panicOn == "handler" {
				panic("fake handler panic")
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"attached": %d}`, len(f.attached))
		})
		p.mods[base.Name] = append(p.mods[base.Name], f)
		if p.batch[base.Name] {
			return fakeBatcher{f}, nil
		}
		return f, nil
	}
	return newFn, p.sizes[strings.TrimSuffix(filepath.Base(path), ".so")], nil
}
