package ebpfmanager

import (
	"sort"
	"sync"
	"time"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// foreignTTL is how long Metrics serves one scan of the chains for foreign
// programs: a scrape reads the cache, and at most one scrape a second pays
// for a scan (0.56 ms of kernel calls for 10 instances on 50 veths in TCX
// mode: kernel.BenchmarkForeignScan).
const foreignTTL = time.Second

// foreignCache is the last scan of our hooks for foreign programs.
type foreignCache struct {
	mu   sync.Mutex
	at   time.Time
	list []ForeignProgram
	now  func() time.Time // time.Now; tests set it
}

// foreignPrograms returns the foreign programs on our hooks, scanning the
// chains again when the last scan is older than foreignTTL. The caller
// holds mu.
func (m *Manager) cachedForeign() []ForeignProgram {
	c := &m.foreign
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	t := now()
	if !c.at.IsZero() && t.Sub(c.at) < foreignTTL {
		return c.list
	}
	c.list, c.at = m.scanForeign(), t
	return c.list
}

// scanForeign reads the chain of every hook we have a program on and lists
// the programs there that are not ours. The caller holds mu.
func (m *Manager) scanForeign() []ForeignProgram {
	var insts []ObservedInstance
	ifaces := map[string]int{}
	for _, in := range m.insts {
		insts = append(insts, observePrograms(in))
		for name, att := range in.atts {
			ifaces[name] = att.iface.Ifindex
		}
	}
	owned := ownedPrograms(insts)
	var out []ForeignProgram
	for _, h := range m.observeHooks(ifaces, insts) {
		for _, f := range ForeignOn(h, owned) {
			out = append(out, ForeignProgram{Interface: f.Interface, Ifindex: f.Ifindex, Hook: h.Hook, ID: f.ID,
				Name: f.Name, Tag: f.Tag, Position: f.Position, EndsChain: f.EndsChain})
		}
	}
	return out
}

// observePrograms is an instance with its program IDs alone.
func observePrograms(in *instance) ObservedInstance {
	oi := ObservedInstance{ID: in.id, Name: in.name}
	if in.dp != nil {
		oi.Programs = map[module.Hook]uint32{}
		for _, h := range module.Hooks {
			if id, ok := in.dp.ProgramID(h); ok {
				oi.Programs[h] = id
			}
		}
	}
	return oi
}

func ownedPrograms(insts []ObservedInstance) map[uint32]bool {
	owned := map[uint32]bool{}
	for _, in := range insts {
		for _, id := range in.Programs {
			owned[id] = true
		}
	}
	return owned
}

// foreignAhead lists the foreign programs that run before an instance's
// program on each hook it is attached to: an accept or drop from one of
// them ends the chain before the instance sees the packet. The caller
// holds mu.
func (m *Manager) foreignAhead(in *instance) []ForeignInfo {
	if in.dp == nil || len(in.atts) == 0 {
		return nil
	}
	var insts []ObservedInstance
	for _, other := range m.insts {
		insts = append(insts, observePrograms(other))
	}
	owned := ownedPrograms(insts)
	out := []ForeignInfo{}
	for _, att := range in.sortedAtts() {
		for _, h := range att.hooks() {
			mine, _ := in.dp.ProgramID(h)
			oh := m.observeHook(att.iface.Name, att.iface.Ifindex, h, owned)
			out = append(out, ahead(oh, owned, mine)...)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Interface < out[j].Interface })
	return out
}

// ahead are the foreign programs of a hook's chain before the program
// mine (none when mine is not there). It is pure.
func ahead(h ObservedHook, owned map[uint32]bool, mine uint32) []ForeignInfo {
	at := -1
	for i, id := range h.Chain {
		if id == mine {
			at = i
		}
	}
	var out []ForeignInfo
	for _, f := range ForeignOn(h, owned) {
		if f.Position < at {
			out = append(out, f)
		}
	}
	return out
}
