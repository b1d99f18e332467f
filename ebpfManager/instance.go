package ebpfmanager

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/gorilla/mux"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Instance states.
const (
	StateRunning = "running"
	StateFailed  = "failed" // its control plane panicked; its data plane stays until deleted
)

// attachment is an instance's programs on one interface.
type attachment struct {
	iface module.Interface
	links map[module.Hook]Link
}

func (a *attachment) hooks() []module.Hook {
	var hs []module.Hook
	for _, h := range module.Hooks {
		if _, ok := a.links[h]; ok {
			hs = append(hs, h)
		}
	}
	return hs
}

// instance is one loaded module.
type instance struct {
	id      string
	name    string
	rank    rank
	tie     int // index among instances of the same priority (legacy mode)
	config  json.RawMessage
	scope   scope
	state   string
	failure string
	created time.Time
	pinDir  string
	dp      DataPlane
	mod     module.Module
	router  *mux.Router
	atts    map[string]*attachment // by interface name
	slaKey  string                 // set for instances a deploy\'s SLA asked for
	refs    int                    // deployed service instances using an SLA instance
	// slaService is the one service an SLA instance serves; mapBytes is
	// what its maps take (counted against the policy's MaxMapBytes).
	slaService string
	mapBytes   uint64
	// readopted: taken back from an earlier run (persist); drift lists what
	// the restart found different from the declared state and repaired.
	readopted bool
	drift     []string
}

// sortedAtts are the attachments by interface name.
func (in *instance) sortedAtts() []*attachment {
	names := make([]string, 0, len(in.atts))
	for n := range in.atts {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*attachment, len(names))
	for i, n := range names {
		out[i] = in.atts[n]
	}
	return out
}

func (in *instance) fail(reason string) {
	in.state = StateFailed
	in.failure = reason
}

// Info is an instance as the API shows it.
type Info struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Priority   int             `json:"priority"`
	Config     json.RawMessage `json:"config"`
	Services   []string        `json:"services,omitempty"`
	Interfaces []string        `json:"interfaces,omitempty"`
	State      string          `json:"state"`
	Error      string          `json:"error,omitempty"`
	Mode       Mode            `json:"mode"`
	// SLA is set for instances created for a deploy's ebpfModules; References
	// counts the service instances using one (it goes with the last).
	SLA         bool             `json:"sla,omitempty"`
	References  int              `json:"references,omitempty"`
	Created     time.Time        `json:"created"`
	Attachments []AttachmentInfo `json:"attachments"`
	// Readopted says the instance was taken back after a restart with
	// persist (its maps and attachments kept); Drift lists what the restart
	// found different from the declared state, and how it was repaired.
	Readopted bool     `json:"readopted,omitempty"`
	Drift     []string `json:"drift,omitempty"`
	// Foreign (GET /ebpf/{id} alone) are the programs that are not ours
	// and run before this instance's on its interfaces: an accept or drop
	// from one ends the chain before the instance sees the packet.
	Foreign []ForeignInfo `json:"foreign,omitempty"`
}

// AttachmentInfo is one attached program.
type AttachmentInfo struct {
	Interface string `json:"interface"`
	Ifindex   int    `json:"ifindex"`
	Service   string `json:"service,omitempty"`
	Hook      string `json:"hook"`
	// Direction names the hook from the service's point of view on a
	// service veth ("ingress" = to the service); on a host interface it is
	// the hook.
	Direction string `json:"direction"`
	ProgramID uint32 `json:"programId"`
}

func (in *instance) info(mode Mode) Info {
	inf := Info{ID: in.id, Name: in.name, Priority: in.rank.priority, Config: in.config, Services: in.scope.list(),
		Interfaces: in.scope.interfaces, State: in.state, Error: in.failure, Mode: mode, Created: in.created,
		SLA: in.slaKey != "", References: in.refs, Attachments: []AttachmentInfo{}, Readopted: in.readopted, Drift: in.drift}
	names := make([]string, 0, len(in.atts))
	for n := range in.atts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a := in.atts[n]
		for _, h := range a.hooks() {
			ai := AttachmentInfo{Interface: n, Ifindex: a.iface.Ifindex, Hook: h.String(), Direction: h.String()}
			if a.iface.Service != nil {
				ai.Service = fmt.Sprintf("%s/%d", a.iface.Service.Name, a.iface.Service.Instance)
				ai.Direction = h.ServiceDirection()
			}
			ai.ProgramID, _ = in.dp.ProgramID(h)
			inf.Attachments = append(inf.Attachments, ai)
		}
	}
	return inf
}
