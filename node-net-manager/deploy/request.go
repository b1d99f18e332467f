package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/events"
	"github.com/oakestra/netmanager/node-net-manager/netenv"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

// Kind is how a service runs: in a container's namespace, or in one the
// NetManager makes (unikernels).
type Kind string

const (
	KindContainer Kind = "container"
	KindUnikernel Kind = "unikernel"
)

// Request is a deploy request as the NodeEngine sends it.
type Request struct {
	Kind         Kind
	PID          int
	ServiceName  string
	Instance     int
	PortMappings string
	EbpfModules  []events.Module
}

// ValidateInstance checks an instance number.
func ValidateInstance(n int) error {
	if n < 0 || n > 1<<20 {
		return fmt.Errorf("%w: instanceNumber %d must be within 0-%d", errdefs.ErrInvalid, n, 1<<20)
	}
	return nil
}

// Validate checks a deploy request and parses its port mappings.
func (r Request) Validate() ([]netenv.PortMapping, error) {
	if err := table.ValidateServiceName(r.ServiceName); err != nil {
		return nil, err
	}
	if err := ValidateInstance(r.Instance); err != nil {
		return nil, err
	}
	switch r.Kind {
	case KindContainer:
		if r.PID <= 0 {
			return nil, fmt.Errorf("%w: pid %d: a container deploy needs the PID of a process in the container", errdefs.ErrInvalid, r.PID)
		}
	case KindUnikernel:
		if r.PID != 0 {
			return nil, fmt.Errorf("%w: pid %d: a unikernel deploy takes pid 0 (the NetManager makes the namespace)", errdefs.ErrInvalid, r.PID)
		}
	default:
		return nil, fmt.Errorf("%w: unknown kind %q", errdefs.ErrInvalid, r.Kind)
	}
	for i, m := range r.EbpfModules {
		if m.Name == "" {
			return nil, fmt.Errorf("%w: ebpfModules[%d].name is required", errdefs.ErrInvalid, i)
		}
	}
	return netenv.ParsePortMappings(r.PortMappings)
}

// Names are the interface names of one service instance.
type Names struct {
	HostVeth string
	TempPeer string
	Netns    string // the namespace name, for unikernels
}

// NamesFor derives stable names from the service identity: a hash keeps them
// within the 15-byte interface-name limit and lets a restart find them again.
func NamesFor(serviceName string, instance int) Names {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d", serviceName, instance))
	h := hex.EncodeToString(sum[:])[:10]
	return Names{
		HostVeth: "oak" + h,
		TempPeer: "oap" + h,
		Netns:    fmt.Sprintf("%s.instance.%d", serviceName, instance),
	}
}
