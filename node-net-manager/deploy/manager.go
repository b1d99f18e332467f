package deploy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/config"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/events"
	"github.com/oakestra/netmanager/node-net-manager/ipam"
	"github.com/oakestra/netmanager/node-net-manager/netenv"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

// Network is the part of the node's network the manager drives; netenv.Env
// implements it and tests use a fake.
type Network interface {
	// ContainerNetns returns the namespace path of pid, refusing a PID that does
	// not exist or that shares the NetManager's own namespace.
	ContainerNetns(pid int) (string, error)
	// CreateNetns makes a named namespace and returns its path.
	CreateNetns(name string) (string, error)
	// DeleteNetns removes a named namespace.
	DeleteNetns(name string) error
	// Attach connects a namespace to the bridge; on error it leaves nothing behind.
	Attach(a netenv.Attachment) (netenv.Attached, error)
	// Detach removes what Attach made; already-gone parts are not an error.
	Detach(a netenv.Attachment) error
	// Readopt takes back what an earlier run's Attach made, if it is intact.
	Readopt(a netenv.Attachment) (netenv.Attached, error)
	// ProcessExists says whether pid is a running process.
	ProcessExists(pid int) bool
	// Renumber moves the node to another subnet; nothing is attached. On
	// error the node keeps its subnet.
	Renumber(n config.Network) error
}

// Table is the service table the manager keeps up to date.
type Table interface {
	Add(in table.Instance) (table.Entry, error)
	Restore(in table.Instance, ips []table.ServiceIP) (table.Entry, error)
	Remove(serviceName string, instance int) error
}

// Record is one deployed service instance.
type Record struct {
	Kind         Kind                 `json:"kind"`
	ServiceName  string               `json:"serviceName"`
	Instance     int                  `json:"instanceNumber"`
	PID          int                  `json:"pid,omitempty"`
	Netns        string               `json:"netns"`
	HostVeth     string               `json:"hostVeth"`
	HostIfindex  int                  `json:"hostIfindex"`
	Peer         string               `json:"peer"`
	NsAddress    netip.Addr           `json:"nsAddress"`
	NsAddressV6  netip.Addr           `json:"nsAddressv6,omitzero"`
	PortMappings []netenv.PortMapping `json:"portMappings"`
	ServiceIPs   []table.ServiceIP    `json:"serviceIPs"`
	// ServiceIPsFrom says whose ServiceIPs are (set by the API's view):
	// IPsFromNode (standalone: the node allocated them), IPsFromCluster, or
	// IPsPending (cluster mode before the cluster's table has the instance;
	// ServiceIPs is empty then).
	ServiceIPsFrom string          `json:"serviceIPsFrom,omitempty"`
	EbpfModules    []events.Module `json:"ebpfModules,omitempty"`

	seq        uint64            // deploy order
	attachment netenv.Attachment // what was attached, for Detach
	netnsID    NetnsID           // a container's namespace at deploy, for isAlive
}

// Where a Record's service IPs come from (Record.ServiceIPsFrom).
const (
	IPsFromNode    = "node"
	IPsFromCluster = "cluster"
	IPsPending     = "pending"
)

type key struct {
	name string
	inst int
}

// Options configures a Manager. Every field but Log, AcceptModules, StatePath
// and Liveness is required.
type Options struct {
	Net   config.Network
	Env   Network
	Table Table
	Bus   *events.Bus
	Log   logrus.FieldLogger
	// AcceptModules says whether SLA ebpfModules can be honoured; nil refuses
	// every deploy that asks for modules (no eBPF Manager is running).
	AcceptModules func([]events.Module) error
	// StatePath, when set, is the file the records are saved to after every
	// change, for Readopt after a restart.
	StatePath string
	// Liveness tells whether deployed workloads still run (RemoveStale);
	// ProcLiveness when nil.
	Liveness Liveness
}

// Manager deploys and undeploys service networking.
type Manager struct {
	opts   Options
	ops    sync.Mutex // serialises deploy and undeploy
	mu     sync.RWMutex
	pool   *ipam.Pool
	recs   map[key]*Record
	seq    uint64
	closed bool
}

// New returns a Manager with an empty node.
func New(opts Options) (*Manager, error) {
	if opts.Env == nil || opts.Table == nil || opts.Bus == nil {
		return nil, errors.New("deploy: Env, Table and Bus are required")
	}
	if opts.Log == nil {
		opts.Log = logrus.StandardLogger()
	}
	if opts.Liveness == nil {
		opts.Liveness = ProcLiveness{}
	}
	pool, err := ipam.NewPool(opts.Net.NodeSubnet, opts.Net.Gateway)
	if err != nil {
		return nil, fmt.Errorf("node subnet: %w", err)
	}
	return &Manager{opts: opts, pool: pool, recs: map[key]*Record{}}, nil
}

// Deploy connects a service instance to the node and returns its record.
func (m *Manager) Deploy(ctx context.Context, req Request) (Record, error) {
	ports, err := req.Validate()
	if err != nil {
		return Record{}, err
	}
	if len(req.EbpfModules) > 0 {
		if m.opts.AcceptModules == nil {
			return Record{}, fmt.Errorf("%w: ebpfModules requested but this NetManager runs no eBPF Manager", errdefs.ErrUnprocessable)
		}
		if err := m.opts.AcceptModules(req.EbpfModules); err != nil {
			return Record{}, err
		}
	}
	m.ops.Lock()
	defer m.ops.Unlock()
	if rec, done, err := m.handleExisting(ctx, req, ports); done || err != nil {
		return rec, err
	}
	if err := m.checkFree(req, ports); err != nil {
		return Record{}, err
	}
	var undo undoStack
	rec, err := m.build(ctx, req, ports, &undo)
	if err != nil {
		if uerr := undo.run(); uerr != nil {
			err = errors.Join(err, fmt.Errorf("rolling back: %w", uerr))
		}
		return Record{}, fmt.Errorf("deploy %s instance %d: %w", req.ServiceName, req.Instance, err)
	}
	m.mu.Lock()
	m.seq++
	rec.seq = m.seq
	m.recs[key{req.ServiceName, req.Instance}] = rec
	m.mu.Unlock()
	m.save()
	m.opts.Log.WithFields(logrus.Fields{"service": rec.ServiceName, "instance": rec.Instance, "veth": rec.HostVeth, "ip": rec.NsAddress}).Info("service deployed")
	return rec.public(), nil
}

// handleExisting acts on the instance's existing record, if any: the same
// request again is answered with it (done), a record whose container is
// gone is torn down so the deploy replaces it. The caller holds ops.
func (m *Manager) handleExisting(ctx context.Context, req Request, ports []netenv.PortMapping) (Record, bool, error) {
	m.mu.RLock()
	rec := m.recs[key{req.ServiceName, req.Instance}]
	closed := m.closed
	m.mu.RUnlock()
	if rec == nil || closed {
		return Record{}, false, nil
	}
	switch decideRedeploy(rec, req, ports, rec.Kind == KindContainer && m.opts.Env.ProcessExists(rec.PID)) {
	case answerSame:
		return rec.public(), true, nil
	case replaceStale:
		m.opts.Log.WithFields(logrus.Fields{"service": rec.ServiceName, "instance": rec.Instance, "pid": rec.PID}).
			Info("replacing a deployment whose container is gone")
		if err := m.teardown(ctx, rec); err != nil {
			return Record{}, false, fmt.Errorf("replace the stale deployment: %w", err)
		}
	}
	return Record{}, false, nil // a clash: checkFree answers it
}

// checkFree refuses a deploy that clashes with what is deployed: the same
// instance twice, or a host port another instance already maps.
func (m *Manager) checkFree(req Request, ports []netenv.PortMapping) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return fmt.Errorf("%w: the NetManager is shutting down", errdefs.ErrConflict)
	}
	if r := m.recs[key{req.ServiceName, req.Instance}]; r != nil {
		return fmt.Errorf("%w: instance %d of %s is already deployed (veth %s, %s)", errdefs.ErrConflict, req.Instance, req.ServiceName, r.HostVeth, r.NsAddress)
	}
	for _, r := range m.recs {
		for _, theirs := range r.PortMappings {
			for _, mine := range ports {
				if mine.HostPort == theirs.HostPort && mine.Protocol == theirs.Protocol {
					return fmt.Errorf("%w: host port %d/%s is already mapped to instance %d of %s", errdefs.ErrConflict, mine.HostPort, mine.Protocol, r.Instance, r.ServiceName)
				}
			}
		}
	}
	return nil
}

// build runs the deploy steps, pushing each one's inverse on undo.
func (m *Manager) build(ctx context.Context, req Request, ports []netenv.PortMapping, undo *undoStack) (*Record, error) {
	names := NamesFor(req.ServiceName, req.Instance)
	rec := &Record{Kind: req.Kind, ServiceName: req.ServiceName, Instance: req.Instance, PID: req.PID, PortMappings: ports, EbpfModules: req.EbpfModules}
	var err error
	if req.Kind == KindContainer {
		if rec.Netns, err = m.opts.Env.ContainerNetns(req.PID); err != nil {
			return nil, err
		}
		m.identify(rec)
	} else {
		if rec.Netns, err = m.opts.Env.CreateNetns(names.Netns); err != nil {
			return nil, err
		}
		undo.push("delete namespace "+names.Netns, func() error { return m.opts.Env.DeleteNetns(names.Netns) })
	}
	if rec.NsAddress, err = m.pool.Allocate(); err != nil {
		return nil, fmt.Errorf("%w: node subnet: %v", errdefs.ErrConflict, err)
	}
	undo.push("release address", func() error { m.pool.Release(rec.NsAddress); return nil })
	if m.opts.Net.NodeSubnetV6.IsValid() {
		if rec.NsAddressV6, err = ipam.Pair(m.opts.Net.NodeSubnet, rec.NsAddress, m.opts.Net.NodeSubnetV6); err != nil {
			return nil, err
		}
	}
	entry, err := m.opts.Table.Add(table.Instance{ServiceName: req.ServiceName, Instance: req.Instance, NsIP: rec.NsAddress, NsIPv6: rec.NsAddressV6})
	if err != nil {
		return nil, err
	}
	undo.push("remove table entry", func() error { return m.opts.Table.Remove(req.ServiceName, req.Instance) })
	rec.ServiceIPs = entry.ServiceIPs
	rec.Peer = m.opts.Net.PeerName
	rec.attachment = rec.attachmentSpec()
	att, err := m.opts.Env.Attach(rec.attachment)
	if err != nil {
		return nil, err
	}
	undo.push("detach "+names.HostVeth, func() error { return m.opts.Env.Detach(rec.attachment) })
	rec.HostVeth, rec.HostIfindex, rec.Peer = names.HostVeth, att.HostIfindex, att.Peer
	if err := m.opts.Bus.Publish(ctx, events.Event{Type: events.ServiceCreated, Service: rec.event()}); err != nil {
		return nil, fmt.Errorf("%w: %v", errdefs.ErrUnprocessable, err)
	}
	return rec, nil
}

// Undeploy removes a service instance's networking. kind must match how it was deployed.
func (m *Manager) Undeploy(ctx context.Context, kind Kind, serviceName string, instance int) error {
	if err := table.ValidateServiceName(serviceName); err != nil {
		return err
	}
	if err := ValidateInstance(instance); err != nil {
		return err
	}
	m.ops.Lock()
	defer m.ops.Unlock()
	m.mu.RLock()
	rec := m.recs[key{serviceName, instance}]
	m.mu.RUnlock()
	if rec == nil {
		return fmt.Errorf("%w: instance %d of %s is not deployed on this node", errdefs.ErrNotFound, instance, serviceName)
	}
	if rec.Kind != kind {
		return fmt.Errorf("%w: instance %d of %s was deployed as a %s, not a %s", errdefs.ErrConflict, instance, serviceName, rec.Kind, kind)
	}
	return m.teardown(ctx, rec)
}

// teardown removes one record's networking; the caller holds ops.
func (m *Manager) teardown(ctx context.Context, rec *Record) error {
	var errs []error
	if err := m.opts.Bus.Publish(ctx, events.Event{Type: events.ServiceRemoved, Service: rec.event()}); err != nil {
		m.opts.Log.WithError(err).WithField("service", rec.ServiceName).Warn("a subscriber failed on ServiceRemoved; removing the service anyway")
	}
	if err := m.opts.Env.Detach(rec.attachment); err != nil {
		errs = append(errs, err)
	}
	if rec.Kind == KindUnikernel {
		if err := m.opts.Env.DeleteNetns(NamesFor(rec.ServiceName, rec.Instance).Netns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := m.opts.Table.Remove(rec.ServiceName, rec.Instance); err != nil {
		errs = append(errs, err)
	}
	m.mu.Lock()
	m.pool.Release(rec.NsAddress)
	delete(m.recs, key{rec.ServiceName, rec.Instance})
	m.mu.Unlock()
	m.save()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("undeploy %s instance %d: %w", rec.ServiceName, rec.Instance, err)
	}
	m.opts.Log.WithFields(logrus.Fields{"service": rec.ServiceName, "instance": rec.Instance}).Info("service undeployed")
	return nil
}

// List returns every deployed instance, ordered by service name and instance.
func (m *Manager) List() []Record {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Record, 0, len(m.recs))
	for _, r := range m.recs {
		out = append(out, r.public())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ServiceName != out[j].ServiceName {
			return out[i].ServiceName < out[j].ServiceName
		}
		return out[i].Instance < out[j].Instance
	})
	return out
}

// Services returns the event view of every deployed instance, in deploy order:
// what a subscriber that starts late needs to catch up.
func (m *Manager) Services() []events.Service {
	m.mu.RLock()
	defer m.mu.RUnlock()
	recs := make([]*Record, 0, len(m.recs))
	for _, r := range m.recs {
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].seq < recs[j].seq })
	out := make([]events.Service, len(recs))
	for i, r := range recs {
		out[i] = r.event()
	}
	return out
}

// Close refuses further deploys and undeploys every instance, newest first.
func (m *Manager) Close(ctx context.Context) error {
	m.ops.Lock()
	defer m.ops.Unlock()
	m.mu.Lock()
	m.closed = true
	recs := make([]*Record, 0, len(m.recs))
	for _, r := range m.recs {
		recs = append(recs, r)
	}
	m.mu.Unlock()
	sort.Slice(recs, func(i, j int) bool { return recs[i].seq > recs[j].seq })
	var errs []error
	for _, r := range recs {
		errs = append(errs, m.teardown(ctx, r))
	}
	return errors.Join(errs...)
}

// attachmentSpec is what netenv attaches for the record.
func (r *Record) attachmentSpec() netenv.Attachment {
	names := NamesFor(r.ServiceName, r.Instance)
	return netenv.Attachment{
		ServiceName: r.ServiceName, Instance: r.Instance, Netns: r.Netns,
		HostVeth: names.HostVeth, TempPeer: names.TempPeer, Peer: r.Peer,
		IPv4: r.NsAddress, IPv6: r.NsAddressV6, Ports: r.PortMappings, Unikernel: r.Kind == KindUnikernel,
	}
}

func (r *Record) public() Record {
	c := *r
	c.PortMappings = append([]netenv.PortMapping{}, r.PortMappings...)
	c.ServiceIPs = append([]table.ServiceIP(nil), r.ServiceIPs...)
	return c
}

func (r *Record) event() events.Service {
	return events.Service{
		ServiceName: r.ServiceName, Instance: r.Instance, HostVeth: r.HostVeth, HostIfindex: r.HostIfindex,
		Peer: r.Peer, Netns: r.Netns, PID: r.PID, IPv4: r.NsAddress, IPv6: r.NsAddressV6,
		Modules: append([]events.Module(nil), r.EbpfModules...),
	}
}

type undoStep struct {
	what string
	fn   func() error
}

// undoStack runs the inverses of completed steps, newest first.
type undoStack []undoStep

func (u *undoStack) push(what string, fn func() error) { *u = append(*u, undoStep{what, fn}) }

func (u *undoStack) run() error {
	var errs []error
	for i := len(*u) - 1; i >= 0; i-- {
		s := (*u)[i]
		if err := s.fn(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.what, err))
		}
	}
	return errors.Join(errs...)
}
