package ebpfmanager

import (
	"errors"
	"fmt"
	"sort"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// Operations the manager counts for GET /metrics.
const (
	OpLoad            = "load"
	OpUpdate          = "update"
	OpDelete          = "delete"
	OpDeleteAll       = "delete_all"
	OpServiceCreated  = "service_created" // attach every applicable instance to a new service
	OpServiceRemoved  = "service_removed"
	OpServicesChanged = "services_changed"
)

// OperationCount is how often an operation ended with one outcome.
type OperationCount struct {
	Operation string
	// Error is the errdefs.Kind of the failure; "" counts successes.
	Error string
	Count uint64
}

// Metrics is a snapshot of the manager for GET /metrics.
type Metrics struct {
	Operations []OperationCount // by operation, then error
	Instances  []InstanceMetrics
	// Foreign are programs on the hooks the manager chains on that are not
	// the manager's (another agent's), as the last check found them.
	Foreign []ForeignProgram
}

// ForeignProgram is a program on one of our hooks that is not ours.
type ForeignProgram struct {
	Interface string
	Ifindex   int
	Hook      module.Hook
	ID        uint32 // kernel program ID
	Name, Tag string
	Position  int // 0-based position in the hook's run order
	// EndsChain: it runs before our first program, so an accept or drop
	// verdict of it means our modules never see the packet.
	EndsChain bool
}

// DropCount is how many packets a data plane dropped for one reason
// (bpf/reasons.h nm_drops, named by module.DropReasoner).
type DropCount struct {
	Reason string
	Count  uint64
}

// InstanceMetrics is one module instance.
type InstanceMetrics struct {
	ID, Module, State string
	Attachments       int
	// Programs are the kernel's run statistics of the instance's programs
	// (one per hook, shared by every attachment); empty unless
	// Options.RunStats.
	Programs []ProgramMetrics
	// Samples are the control plane's own (module.MetricsReporter).
	Samples []module.Metric
	// Drops are the data plane's drops by reason (nm_drops), when it has
	// that map.
	Drops []DropCount
	// Error says why samples are missing (a program's stats could not be
	// read, the control plane's Metrics failed or broke CheckMetrics).
	Error error
}

// ProgramMetrics are one program's run statistics.
type ProgramMetrics struct {
	Hook module.Hook
	RunStats
}

type opKey struct{ op, kind string }

// count records an operation's outcome and returns err unchanged.
func (m *Manager) count(op string, err error) error {
	m.opsMu.Lock()
	defer m.opsMu.Unlock()
	if m.ops == nil {
		m.ops = map[opKey]uint64{}
	}
	m.ops[opKey{op, errdefs.Kind(err)}]++
	return err
}

// Metrics reads every instance's samples. It holds the registry while it
// reads, so an instance is not closed under a scrape.
func (m *Manager) Metrics() Metrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := Metrics{Operations: m.operations()}
	for _, in := range m.sorted() {
		out.Instances = append(out.Instances, m.instanceMetrics(in))
	}
	out.Foreign = m.cachedForeign() // foreign.go: one scan a second at most
	return out
}

func (m *Manager) operations() []OperationCount {
	m.opsMu.Lock()
	defer m.opsMu.Unlock()
	out := make([]OperationCount, 0, len(m.ops))
	for k, n := range m.ops {
		out = append(out, OperationCount{Operation: k.op, Error: k.kind, Count: n})
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Operation != out[b].Operation {
			return out[a].Operation < out[b].Operation
		}
		return out[a].Error < out[b].Error
	})
	return out
}

func (m *Manager) instanceMetrics(in *instance) InstanceMetrics {
	im := InstanceMetrics{ID: in.id, Module: in.name, State: in.state, Attachments: len(in.atts)}
	var errs []error
	if m.opts.RunStats && in.dp != nil {
		for _, h := range module.Hooks {
			st, ok, err := in.dp.RunStats(h)
			if err != nil {
				errs = append(errs, err)
			}
			if ok && err == nil {
				im.Programs = append(im.Programs, ProgramMetrics{Hook: h, RunStats: st})
			}
		}
	}
	if r, ok := in.mod.(module.MetricsReporter); ok && in.state == StateRunning {
		var ms []module.Metric
		err := m.guard(in, "Metrics", func() (err error) {
			ms, err = r.Metrics()
			return err
		})
		if err == nil {
			err = module.CheckMetrics(ms)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("module metrics: %w", err))
		} else {
			im.Samples = ms
		}
	}
	if in.dp != nil {
		drops, err := dropCounts(in.mod, in.dp.SDK())
		if err != nil {
			errs = append(errs, err)
		}
		im.Drops = drops
	}
	im.Error = errors.Join(errs...)
	return im
}
