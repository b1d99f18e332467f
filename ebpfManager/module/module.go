package module

import (
	"encoding/json"
	"errors"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"
)

// APIVersion is the version of this SDK. It changes only when the contract
// between the manager and modules changes; modules are rebuilt against it.
const APIVersion = 1

// Names of the entry points a data plane defines (C functions in SEC("tc")).
const (
	ProgramIngress = "nm_ingress"
	ProgramEgress  = "nm_egress"
)

// ErrInvalidConfig is wrapped by New or MapSizes when the instance's config is
// wrong; the manager answers 400 with the message instead of 422.
var ErrInvalidConfig = errors.New("invalid module config")

// Hook is the TC hook of an interface that a program runs on.
type Hook int

const (
	// HookIngress sees packets the interface receives. On a service's host
	// veth these are packets leaving the service.
	HookIngress Hook = iota
	// HookEgress sees packets the interface sends. On a service's host veth
	// these are packets going to the service.
	HookEgress
)

// Hooks lists both hooks in order.
var Hooks = []Hook{HookIngress, HookEgress}

func (h Hook) String() string {
	if h == HookEgress {
		return "egress"
	}
	return "ingress"
}

// Program returns the name of the entry point that runs on h.
func (h Hook) Program() string {
	if h == HookEgress {
		return ProgramEgress
	}
	return ProgramIngress
}

// ServiceDirection names h from the point of view of the service behind a
// host veth: the veth's ingress hook carries the service's "egress" traffic and
// its egress hook the service's "ingress" traffic.
func (h Hook) ServiceDirection() string {
	if h == HookEgress {
		return "ingress"
	}
	return "egress"
}

// DataPlane is one loaded instance of a module's N.o: a single set of maps and
// programs shared by all of the instance's attachments. The manager owns it and
// closes it after Close.
type DataPlane struct {
	Maps     map[string]*ebpf.Map
	Programs map[string]*ebpf.Program
}

// Service identifies the service instance behind a host veth.
type Service struct {
	Name     string // app.appns.service.servicens
	Instance int
	IPv4     netip.Addr
	IPv6     netip.Addr // invalid when IPv6 is off
	Netns    string     // path of the service's network namespace
}

// Interface is an interface the data plane is attached to.
type Interface struct {
	Name    string
	Ifindex int
	// Service is the service behind a host veth; nil for a host interface.
	Service *Service
}

// Attachment tells a module that its programs run on an interface's hooks.
type Attachment struct {
	Interface Interface
	Hooks     []Hook
}

// ServiceIP is one semantic address of a service and its policy
// ("round_robin", "instance", "closest").
type ServiceIP struct {
	Policy  string
	Address netip.Addr
}

// ServiceEntry is one service instance as the service table knows it.
type ServiceEntry struct {
	Name     string
	Instance int
	NsIP     netip.Addr
	NsIPv6   netip.Addr
	// ServiceIPs are the IPv4 ones first, then, when the node has an IPv6
	// service range, the IPv6 ones (same policies).
	ServiceIPs []ServiceIP
	// Remote says the instance runs on another node (cluster mode). A module
	// that delivers in the kernel leaves flows to it, and to a service IP
	// with any remote instance, to the NetManager's tunnel — or tunnels them
	// itself, in the tunnel's wire format, to Node.
	Remote bool
	// Node is where the node of a remote instance takes tunnel traffic:
	// its node IP and tunnel UDP port. Invalid for a local instance.
	Node netip.AddrPort
}

// ServiceTable gives read access to the NetManager's service table.
type ServiceTable interface {
	// Entries returns every known instance.
	Entries() []ServiceEntry
	// Lookup resolves an address: a round-robin service IP gives every
	// instance of its service, an instance IP or namespace IP gives one.
	Lookup(ip netip.Addr) []ServiceEntry
}

// Base is what a module instance is given at creation.
type Base struct {
	ID       string          // instance id, unique on this node
	Name     string          // module name
	Priority int             // position in the chain: lower runs first
	Config   json.RawMessage // the request's config, as sent ("null" when absent)
	// Router serves the instance's sub-routes: a handler registered for
	// "/counts" answers GET /ebpf/{id}/counts. The routes disappear with the
	// instance.
	Router   *mux.Router
	Log      logrus.FieldLogger
	Services ServiceTable
	// ServiceRanges are the node's service ranges: IPv4, then IPv6 when the
	// node has IPv6 service IPs. Modules that translate service IPs default
	// to them.
	ServiceRanges []netip.Prefix
	DataPlane     *DataPlane
	// HostInterfaces are the host interfaces the load request named
	// ("interfaces"), in its order: the instance is attached to each of
	// them after New. Modules that give host interfaces roles check their
	// config against it.
	HostInterfaces []string
	// Tunnel is this node's end of the inter-node tunnel (cluster mode): its
	// node IP and the UDP port the NetManager's tunnel listens on; invalid
	// when the node has no node IP.
	Tunnel netip.AddrPort
	// State is what the instance last gave SaveState, handed back when the
	// daemon restarted with persist; nil for a new instance.
	State json.RawMessage
	// Readopted says the maps in DataPlane are the ones the instance had
	// before the restart, with their contents (and the programs run on in
	// the kernel meanwhile): New must not reset what it wants to keep.
	Readopted bool
	// SaveState records the instance's own state (e.g. rules changed
	// through its routes) in the daemon's declared state, written
	// atomically, for State after a restart. It may be nil (no state is
	// kept); call it once a change is in effect (from New too).
	SaveState func(json.RawMessage) error
}

// Module is a running control plane.
type Module interface {
	// Attach is called after the instance's programs were attached to an
	// interface. An error undoes that attachment and fails the operation that
	// caused it (loading the module, or deploying the service).
	Attach(a Attachment) error
	// Detach is called after the programs were detached from an interface
	// (the service went away, or the instance is being deleted).
	Detach(a Attachment) error
	// Close is called once when the instance is deleted, after every Detach.
	Close() error
}

// ServicesWatcher is an optional interface of a Module. ServicesChanged is
// called when the service table changed without a service event on this
// node: in cluster mode, the cluster answered about a job or announced a
// change to one. An error is logged.
type ServicesWatcher interface {
	ServicesChanged() error
}

// Batcher is an optional interface of a Module, for control planes whose
// Attach does work that is the same whatever the interface (e.g. writing
// maps derived from the whole service table): attached to N interfaces one
// by one, they would do it N times. When the eBPF Manager attaches a new
// instance to more than one interface at once (loading it, or taking it
// back at a restart), it calls BeginBatch before the first Attach and
// EndBatch after the last. Attach calls in between may leave that work to
// EndBatch, which must do it: the load answers after EndBatch. EndBatch is
// called also when an Attach of the batch failed (the load then fails
// whatever EndBatch returns); an error from EndBatch fails the load as an
// error from Attach would, and every attachment is undone (Detach, outside
// a batch). No other call into the module comes between BeginBatch and
// EndBatch.
type Batcher interface {
	BeginBatch()
	EndBatch() error
}

// NewFunc is the signature of the New function a module's plugin exports:
//
//	func New(base module.Base) (module.Module, error)
type NewFunc = func(Base) (Module, error)

// MapSizesFunc is the signature of the optional MapSizes function: given an
// instance's config, the max_entries to set on named maps before the data
// plane is loaded (map sizes are load-time knobs).
//
//	func MapSizes(config json.RawMessage) (map[string]uint32, error)
type MapSizesFunc = func(config json.RawMessage) (map[string]uint32, error)
