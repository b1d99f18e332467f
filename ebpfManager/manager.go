package ebpfmanager

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/events"
)

// Options configures a Manager.
type Options struct {
	Kernel     Kernel
	Plugins    Plugins
	ModulesDir string
	PinDir     string // bpffs directory under which each instance pins its maps and links
	// Services lists the deployed services in deploy order.
	Services func() []events.Service
	Table    module.ServiceTable
	// Tunnel is this node's tunnel address (node IP, tunnel UDP port),
	// handed to modules; invalid without a node IP.
	Tunnel netip.AddrPort
	// ServiceRanges are the node's service ranges, handed to modules.
	ServiceRanges []netip.Prefix
	// Store keeps the declared instances (nil: nothing is kept). Persist
	// keeps what an earlier run pinned, for Readopt; without it New removes
	// those pins and clears the Store.
	Store   Store
	Persist bool
	// RunStats has Metrics read the kernel's run count and run time of
	// every instance's programs; the caller keeps the kernel's BPF stats
	// enabled meanwhile (they cost every program run two clock reads).
	RunStats bool
	// SLA is the operator's rule for deploys' ebpfModules; the zero value
	// refuses every SLA module.
	SLA SLAPolicy
	Log logrus.FieldLogger
	// Tracer starts the traces of Trace (nil: the kernel's, package trace).
	Tracer Tracer
}

// Manager is the registry of module instances.
type Manager struct {
	opts   Options
	mu     sync.Mutex
	insts  map[string]*instance
	sla    map[string]*instance // SLA instances by slaKey
	nextID int
	seq    uint64
	// removed are the veths of services whose ServiceRemoved was handled
	// (the caller, not holding mu, may list them a moment longer).
	removed map[string]bool
	live    map[string]liveService // created, until the deploy manager lists them
	// readopting is set from Readopt to Reconcile: attachments that are not
	// adopted then are drift.
	readopting bool
	// stateMu guards declared (taken after mu, or alone by SaveState).
	stateMu  sync.Mutex
	declared map[string]Declared
	pending  map[string]json.RawMessage // states saved before their instance was declared
	// opsMu guards ops, the operations counted for Metrics.
	opsMu sync.Mutex
	ops   map[opKey]uint64
	// foreign is the last scan for programs on our hooks that are not ours
	// (foreign.go), which Metrics serves.
	foreign foreignCache
}

// New returns a Manager. Without Persist it removes pins an earlier run left
// in PinDir (their links and maps belong to no one now) and clears the
// Store; with it, Readopt takes them back.
func New(opts Options) (*Manager, error) {
	if opts.Kernel == nil || opts.Plugins == nil || opts.Services == nil {
		return nil, errors.New("ebpfmanager: Kernel, Plugins and Services are required")
	}
	if opts.Log == nil {
		opts.Log = logrus.StandardLogger()
	}
	if opts.Table != nil {
		opts.Table = &liveTable{t: opts.Table} // SetTunnel moves its node address
	}
	if err := opts.Kernel.MakePinDir(opts.PinDir); err != nil {
		return nil, err
	}
	m := &Manager{opts: opts, insts: map[string]*instance{}, sla: map[string]*instance{}, declared: map[string]Declared{}, pending: map[string]json.RawMessage{}, removed: map[string]bool{}, live: map[string]liveService{}}
	if opts.Persist {
		return m, nil
	}
	stale, _ := opts.Kernel.Pins(opts.PinDir)
	for _, name := range stale {
		p := filepath.Join(opts.PinDir, name)
		opts.Log.WithField("path", p).Warn("removing pins left over from an earlier run")
		if err := opts.Kernel.RemovePins(p); err != nil {
			return nil, err
		}
	}
	if opts.Store != nil {
		if err := opts.Store.Save(nil); err != nil {
			return nil, fmt.Errorf("clear the declared module instances: %w", err)
		}
	}
	return m, nil
}

// LoadRequest is the body of POST /ebpf.
type LoadRequest struct {
	Name       string          `json:"name"`
	Config     json.RawMessage `json:"config"`
	Priority   *int            `json:"priority"`
	Services   []string        `json:"services"`
	Interfaces []string        `json:"interfaces"`
}

// Load starts a module instance and attaches it wherever it applies. A failed
// load leaves nothing behind: no link, pin or route.
func (m *Manager) Load(req LoadRequest) (Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	in, err := m.load(req, nil)
	if m.count(OpLoad, err) != nil {
		return Info{}, err
	}
	return in.info(m.opts.Kernel.Mode()), nil
}

// slaLoad is what loading an SLA instance adds to a LoadRequest: its key,
// its service, and the check of its map memory (mapBytes).
type slaLoad struct {
	key, service string
	budget       func(mapBytes uint64) error
}

// load is Load for a caller that holds mu; sla is set for an SLA instance.
func (m *Manager) load(req LoadRequest, sla *slaLoad) (*instance, error) {
	if err := ValidateModuleName(req.Name); err != nil {
		return nil, err
	}
	sc, err := newScope(req.Services, req.Interfaces)
	if err != nil {
		return nil, err
	}
	cfg, err := normaliseConfig(req.Config)
	if err != nil {
		return nil, err
	}
	newFn, sizesFn, obj, err := m.openModule(req.Name)
	if err != nil {
		return nil, err
	}
	prio, tie, err := m.rankFor(req.Priority, sla)
	if err != nil {
		return nil, err
	}
	m.nextID++
	m.seq++
	in := &instance{id: strconv.Itoa(m.nextID), name: req.Name, rank: rank{priority: prio, seq: m.seq}, tie: tie,
		config: cfg, scope: sc, state: StateRunning, created: time.Now().UTC(), atts: map[string]*attachment{}}
	in.pinDir = filepath.Join(m.opts.PinDir, in.id)
	so := startOptions{newFn: newFn, sizesFn: sizesFn, obj: obj}
	if sla != nil {
		in.slaKey, in.slaService, so.budget = sla.key, sla.service, sla.budget
	}
	if err := m.start(in, so); err != nil {
		m.stateMu.Lock()
		delete(m.pending, in.id)
		m.stateMu.Unlock()
		return nil, fmt.Errorf("load module %s: %w", req.Name, err)
	}
	if err := m.declare(in, nil); err != nil {
		// A restart would not know it: it does not run either.
		return nil, errors.Join(fmt.Errorf("load module %s: %w", req.Name, err), m.stop(in), m.undeclare(in.id))
	}
	m.insts[in.id] = in
	m.opts.Log.WithFields(logrus.Fields{"id": in.id, "module": in.name, "priority": prio, "attachments": len(in.atts)}).Info("module loaded")
	return in, nil
}

func normaliseConfig(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("null"), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%w: config must be a JSON object", errdefs.ErrInvalid)
	}
	return raw, nil
}

// openModule finds a module's files, refuses a data plane that needs what the
// kernel lacks, and opens its control plane.
func (m *Manager) openModule(name string) (module.NewFunc, module.MapSizesFunc, string, error) {
	dir := filepath.Join(m.opts.ModulesDir, name)
	if st, err := m.opts.Plugins.Stat(dir); err != nil || !st.IsDir() {
		return nil, nil, "", fmt.Errorf("%w: module %q is not installed in %s", errdefs.ErrNotFound, name, m.opts.ModulesDir)
	}
	so, obj := filepath.Join(dir, name+".so"), filepath.Join(dir, name+".o")
	for _, f := range []string{so, obj} {
		st, err := m.opts.Plugins.Stat(f)
		if err != nil {
			return nil, nil, "", fmt.Errorf("%w: module %q lacks %s", errdefs.ErrUnprocessable, name, filepath.Base(f))
		}
		if why := unsafeFile(st, os.Geteuid()); why != "" {
			return nil, nil, "", fmt.Errorf("%w: module %q: %s %s: the daemon runs it in the kernel and in its own process", errdefs.ErrUnprocessable, name, f, why)
		}
	}
	degraded, err := m.checkFeatures(name, obj)
	if err != nil {
		return nil, nil, "", err
	}
	if len(degraded) > 0 {
		m.opts.Log.WithFields(logrus.Fields{"module": name, "lacking": features(degraded)}).
			Warn("this kernel lacks what some of the module's data plane calls use: those calls fail at run time unless it falls back")
	}
	newFn, sizesFn, err := m.opts.Plugins.Open(so)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%w: module %q: %v", errdefs.ErrUnprocessable, name, err)
	}
	return newFn, sizesFn, obj, nil
}

// rankFor returns a new instance's priority and tie index: an SLA
// instance's is SLAPriority, whatever else runs; an operator's is the one it
// asks for, or one after every operator instance.
func (m *Manager) rankFor(p *int, sla *slaLoad) (prio, tie int, err error) {
	if sla != nil {
		return SLAPriority, m.slaTie(sla.service), nil
	}
	if prio, err = m.priority(p); err != nil {
		return 0, 0, err
	}
	return prio, m.tieFor(prio), nil
}

// priority returns the requested priority, or one after every existing
// operator instance.
func (m *Manager) priority(p *int) (int, error) {
	if p != nil {
		if *p < MinPriority || *p > MaxPriority {
			return 0, fmt.Errorf("%w: priority %d must be within %d-%d", errdefs.ErrInvalid, *p, MinPriority, MaxPriority)
		}
		return *p, nil
	}
	prio := MinPriority
	for _, in := range m.insts {
		if in.slaKey == "" && in.rank.priority >= prio {
			prio = min(in.rank.priority+1, MaxPriority)
		}
	}
	return prio, nil
}

// tieFor is one more than the highest tie index among instances of prio.
func (m *Manager) tieFor(prio int) int {
	tie := 0
	for _, in := range m.insts {
		if in.rank.priority == prio && in.tie >= tie {
			tie = in.tie + 1
		}
	}
	return tie
}

// startOptions are what start needs besides the instance: the module's
// functions and object, and for a re-adopted instance its saved state.
type startOptions struct {
	newFn   module.NewFunc
	sizesFn module.MapSizesFunc
	obj     string
	reuse   bool // take the pinned maps and attachments of an earlier run
	state   json.RawMessage
	// budget, when set, judges the data plane's map memory (Kernel.MapBytes,
	// with the config's MapSizes) before anything is loaded.
	budget func(mapBytes uint64) error
}

// start loads the data plane, creates the control plane and attaches; on
// error it undoes all of it (a re-adopted instance's pins stay: its data
// path keeps running).
func (m *Manager) start(in *instance, so startOptions) (err error) {
	newFn, sizesFn, obj := so.newFn, so.sizesFn, so.obj
	if m.opts.Kernel.Mode() == ModeLegacy {
		if _, err := legacyPriority(in.rank.priority, in.tie); err != nil {
			return fmt.Errorf("%w: %v", errdefs.ErrConflict, err)
		}
	}
	var sizes map[string]uint32
	if sizesFn != nil {
		if err := m.guard(in, "MapSizes", func() (err error) { sizes, err = sizesFn(in.config); return }); err != nil {
			return moduleError(err)
		}
	}
	if so.budget != nil {
		if in.mapBytes, err = m.opts.Kernel.MapBytes(obj, sizes); err != nil {
			return err
		}
		if err := so.budget(in.mapBytes); err != nil {
			return err
		}
	}
	in.dp, err = m.opts.Kernel.Load(LoadOptions{Object: obj, PinDir: filepath.Join(in.pinDir, "maps"), MapSizes: sizes, Reuse: so.reuse, Instance: in.num()})
	if err != nil {
		if !so.reuse {
			_ = m.opts.Kernel.RemovePins(in.pinDir)
		}
		return err
	}
	in.readopted = so.reuse
	undo := func() { // a re-adopted instance's data path runs on
		if so.reuse {
			_ = m.release(in)
		} else {
			_ = m.closeDataPlane(in)
		}
	}
	_, hasIn := in.dp.ProgramID(module.HookIngress)
	_, hasEg := in.dp.ProgramID(module.HookEgress)
	if !hasIn && !hasEg {
		undo()
		return fmt.Errorf("%w: the data plane defines neither %s nor %s", errdefs.ErrUnprocessable, module.ProgramIngress, module.ProgramEgress)
	}
	in.router = newModuleRouter(in.name)
	base := module.Base{ID: in.id, Name: in.name, Priority: in.rank.priority, Config: in.config, Router: in.router,
		Log: m.opts.Log.WithFields(logrus.Fields{"module": in.name, "id": in.id}), Services: m.opts.Table,
		ServiceRanges: append([]netip.Prefix(nil), m.opts.ServiceRanges...), DataPlane: in.dp.SDK(),
		HostInterfaces: append([]string(nil), in.scope.interfaces...), Tunnel: m.opts.Tunnel, State: so.state, Readopted: in.dp.Reused(), SaveState: m.stateSaver(in.id)}
	if err := m.guard(in, "New", func() (err error) { in.mod, err = newFn(base); return }); err != nil {
		undo()
		return moduleError(err)
	}
	if in.mod == nil {
		undo()
		return fmt.Errorf("%w: New returned no module", errdefs.ErrUnprocessable)
	}
	defer func() {
		if err != nil && so.reuse {
			_ = m.release(in)
		} else if err != nil {
			m.stop(in)
		}
	}()
	return m.attachTargets(in, m.targets(in))
}

// attachTargets attaches a new instance to its interfaces, inside one batch
// when its control plane batches (module.Batcher) and there is more than
// one.
func (m *Manager) attachTargets(in *instance, targets []module.Interface) (err error) {
	if b, ok := in.mod.(module.Batcher); ok && len(targets) > 1 {
		if err := m.guard(in, "BeginBatch", func() error { b.BeginBatch(); return nil }); err != nil {
			return err // it panicked
		}
		defer func() {
			end := m.guard(in, "EndBatch", b.EndBatch)
			switch {
			case end == nil:
			case err == nil:
				err = moduleError(fmt.Errorf("module %s, attached to %d interfaces: %w", in.name, len(targets), end))
			default: // the load fails on err; this one is only told
				m.opts.Log.WithFields(logrus.Fields{"id": in.id, "module": in.name}).WithError(end).Debug("EndBatch after a failed attach")
			}
		}()
	}
	for _, t := range targets {
		if err := m.attach(in, t); err != nil {
			return err
		}
	}
	return nil
}

// moduleError maps a control plane's error to a status: its own config
// complaints are 400, the rest 422.
func moduleError(err error) error {
	if errors.Is(err, module.ErrInvalidConfig) || errors.Is(err, errdefs.ErrInvalid) {
		return fmt.Errorf("%w: %v", errdefs.ErrInvalid, err)
	}
	if errdefs.HTTPStatus(err) != 500 {
		return err
	}
	return fmt.Errorf("%w: %v", errdefs.ErrUnprocessable, err)
}

// targets lists the interfaces a new instance applies to: its host interfaces,
// then the veths of the services it selects, in deploy order.
func (m *Manager) targets(in *instance) []module.Interface {
	var out []module.Interface
	for _, name := range in.scope.interfaces {
		out = append(out, module.Interface{Name: name})
	}
	for _, s := range m.services() {
		if in.scope.wantsService(s.ServiceName) {
			out = append(out, serviceInterface(s))
		}
	}
	return out
}

// services are the deployed services in deploy order as the events told
// them, whatever the deploy manager lists at this moment (a service is in
// its list a moment before or after its event); the caller holds mu.
func (m *Manager) services() []events.Service {
	listed := map[string]bool{}
	var out []events.Service
	for _, s := range m.opts.Services() {
		listed[s.HostVeth] = true
		if !m.removed[s.HostVeth] { // its ServiceRemoved came: it is going
			out = append(out, s)
		}
	}
	for veth := range m.removed {
		if !listed[veth] {
			delete(m.removed, veth) // gone from the list too: nothing to remember
		}
	}
	var early []liveService // created, not listed yet
	for veth, l := range m.live {
		if listed[veth] {
			delete(m.live, veth) // listed now: nothing to remember
		} else {
			early = append(early, l)
		}
	}
	sort.Slice(early, func(i, j int) bool { return early[i].seq < early[j].seq })
	for _, l := range early {
		out = append(out, l.s)
	}
	return out
}

// liveService is a service whose ServiceCreated came, in event order.
type liveService struct {
	s   events.Service
	seq uint64
}

func serviceInterface(s events.Service) module.Interface {
	return module.Interface{Name: s.HostVeth, Ifindex: s.HostIfindex, Service: &module.Service{
		Name: s.ServiceName, Instance: s.Instance, IPv4: s.IPv4, IPv6: s.IPv6, Netns: s.Netns}}
}

// Delete stops one instance.
func (m *Manager) Delete(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	in := m.insts[id]
	if in == nil {
		return m.count(OpDelete, fmt.Errorf("%w: no module instance %q", errdefs.ErrNotFound, id))
	}
	m.forget(in)
	err := errors.Join(m.stop(in), m.undeclare(id))
	m.opts.Log.WithFields(logrus.Fields{"id": id, "module": in.name}).Info("module deleted")
	return m.count(OpDelete, err)
}

// DeleteAll stops every instance, highest rank first.
func (m *Manager) DeleteAll() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	insts := m.sorted()
	for i := len(insts) - 1; i >= 0; i-- {
		m.forget(insts[i])
		errs = append(errs, m.stop(insts[i]), m.undeclare(insts[i].id))
	}
	return m.count(OpDeleteAll, errors.Join(errs...))
}

// forget removes an instance from the registry; the caller holds mu.
func (m *Manager) forget(in *instance) {
	delete(m.insts, in.id)
	if in.slaKey != "" && m.sla[in.slaKey] == in {
		delete(m.sla, in.slaKey)
	}
}

// stop detaches everything, in the order of the interfaces' names (the
// same every time), closes the control plane and the data plane.
func (m *Manager) stop(in *instance) error {
	var errs []error
	for _, att := range in.sortedAtts() {
		errs = append(errs, m.detach(in, att.iface.Name))
	}
	if in.mod != nil {
		if err := m.guard(in, "Close", in.mod.Close); err != nil {
			m.opts.Log.WithError(err).WithFields(logrus.Fields{"id": in.id, "module": in.name}).Warn("module Close failed")
		}
	}
	errs = append(errs, m.closeDataPlane(in))
	return errors.Join(errs...)
}

func (m *Manager) closeDataPlane(in *instance) error {
	var errs []error
	if in.dp != nil {
		errs = append(errs, in.dp.Close())
	}
	errs = append(errs, m.opts.Kernel.RemovePins(in.pinDir))
	return errors.Join(errs...)
}

// Close deletes every instance and removes the pin directory if it is empty.
func (m *Manager) Close() error {
	err := m.DeleteAll()
	if rerr := m.opts.Kernel.Unpin(m.opts.PinDir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("remove pin dir: %w", rerr))
	}
	return err
}

// List returns every instance in chain order.
func (m *Manager) List() []Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Info{}
	for _, in := range m.sorted() {
		out = append(out, in.info(m.opts.Kernel.Mode()))
	}
	return out
}

// Get returns one instance.
func (m *Manager) Get(id string) (Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	in := m.insts[id]
	if in == nil {
		return Info{}, fmt.Errorf("%w: no module instance %q", errdefs.ErrNotFound, id)
	}
	inf := in.info(m.opts.Kernel.Mode())
	inf.Foreign = m.foreignAhead(in)
	return inf, nil
}

// sorted returns the instances in chain order; the caller holds mu.
func (m *Manager) sorted() []*instance {
	out := make([]*instance, 0, len(m.insts))
	for _, in := range m.insts {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rank.less(out[j].rank) })
	return out
}
