package ebpfmanager

import (
	"fmt"
	"math"
)

// rank orders module instances in a chain: lower priority first, equal
// priorities in creation order.
type rank struct {
	priority int
	seq      uint64
}

func (a rank) less(b rank) bool {
	if a.priority != b.priority {
		return a.priority < b.priority
	}
	return a.seq < b.seq
}

// placeTCX decides where a program ranked r goes in chain (program IDs in run
// order; owned maps the IDs of our programs to their ranks, foreign programs
// are absent): before the first of ours that ranks after it, else after the
// last of ours, else at the tail.
func placeTCX(chain []uint32, owned map[uint32]rank, r rank, revision uint64) Place {
	var last uint32
	for _, id := range chain {
		other, ok := owned[id]
		if !ok {
			continue
		}
		if r.less(other) {
			return Place{Anchor: AnchorBefore, ProgID: id, Revision: revision}
		}
		last = id
	}
	if last != 0 {
		return Place{Anchor: AnchorAfter, ProgID: last, Revision: revision}
	}
	return Place{Anchor: AnchorTail, Revision: revision}
}

// Priority bounds of a module instance the operator loads.
const (
	MinPriority = 1
	MaxPriority = 1000
	maxTies     = 64 // instances of one priority in legacy mode
)

// SLAPriority is the priority of every SLA instance (a deploy's
// ebpfModules): one after every priority an operator can give, so on a
// service's veth its SLA instances run after every operator instance, in
// both modes, whichever was loaded first. A tenant cannot choose another.
const SLAPriority = MaxPriority + 1

// maxSLATies is how many SLA instances share one interface in legacy mode:
// the cls_bpf priorities left above the operators' (SLA instances of
// different services never share an interface).
const maxSLATies = math.MaxUint16 - SLAPriority*maxTies + 1

// legacyPriority maps an instance's priority and its tie index (0 for the
// first instance of that priority, 1 for the next, ...) to a cls_bpf filter
// priority, which orders filters ascending. 0 is never returned (it asks the
// kernel to choose).
func legacyPriority(priority, tie int) (uint16, error) {
	if priority < MinPriority || priority > SLAPriority {
		return 0, fmt.Errorf("priority %d outside %d-%d", priority, MinPriority, MaxPriority)
	}
	ties := maxTies
	if priority == SLAPriority {
		ties = maxSLATies
	}
	if tie < 0 || tie >= ties {
		return 0, fmt.Errorf("more than %d instances share priority %d", ties, priority)
	}
	return uint16(priority*maxTies + tie), nil
}
