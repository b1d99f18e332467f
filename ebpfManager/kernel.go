package ebpfmanager

import (
	"errors"
	"io/fs"
	"time"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Mode is how programs are chained on an interface hook.
type Mode string

const (
	// ModeTCX chains with TCX links (kernel >= 6.6) placed by anchors.
	ModeTCX Mode = "tcx"
	// ModeLegacy chains with a clsact qdisc and cls_bpf filters ordered by
	// netlink priority.
	ModeLegacy Mode = "legacy"
)

// ErrChainChanged is returned by Kernel.Attach when the chain changed since it
// was read (TCX expected revision); the manager reads it again and retries.
var ErrChainChanged = errors.New("chain changed while attaching")

// LoadOptions asks the kernel to load a module's data plane.
type LoadOptions struct {
	Object   string            // path of N.o
	PinDir   string            // bpffs directory for this instance's maps
	MapSizes map[string]uint32 // max_entries overrides by map name
	// Reuse takes the maps already pinned in PinDir (an earlier run's)
	// instead of new ones; a pinned map the object's spec does not fit is
	// an error (ErrConflict).
	Reuse bool
	// Instance is the instance's numeric id, set as the object's
	// nm_instance (bpf/reasons.h: nm_drop leaves it in a dropped packet's
	// control block, where the drop monitor reads it) when the object has it.
	Instance uint32
}

// DataPlane is one loaded data plane.
type DataPlane interface {
	// SDK returns the maps and programs handed to the control plane.
	SDK() *module.DataPlane
	// ProgramID returns the kernel ID of the program for hook, if the object has one.
	ProgramID(h module.Hook) (uint32, bool)
	// RunStats returns how often the program for hook ran and for how long,
	// as the kernel counts while its BPF stats are enabled; ok is false when
	// the object has no program for hook.
	RunStats(h module.Hook) (s RunStats, ok bool, err error)
	// Close closes the maps and programs and removes the pins.
	Close() error
	// Release closes the maps and programs but keeps the pins, for the
	// next run to take them back.
	Release() error
	// Reused says the maps are an earlier run's (LoadOptions.Reuse found
	// them pinned).
	Reused() bool
}

// Anchor says where a TCX link goes relative to the chain.
type Anchor int

const (
	AnchorTail   Anchor = iota // after everything
	AnchorBefore               // before the program ProgID
	AnchorAfter                // after the program ProgID
)

// Place is where a program is attached: an anchor (TCX), or a netlink
// priority (legacy).
type Place struct {
	Anchor   Anchor
	ProgID   uint32
	Revision uint64 // expected chain revision (TCX); 0 means any
	Priority uint16 // cls_bpf filter priority (legacy)
}

// AttachRequest asks the kernel to attach a data plane's program.
type AttachRequest struct {
	DataPlane DataPlane
	Hook      module.Hook
	Ifindex   int
	Ifname    string
	Place     Place
	PinPath   string // where to pin the link (TCX); "" for none
	// Adopt takes over the program an earlier run attached for this
	// interface and hook (the link pinned at PinPath; the legacy filter at
	// Place.Priority), swapping in this data plane's program in one step,
	// instead of attaching a second one. Without one, it attaches.
	Adopt bool
}

// Link is one attached program.
type Link interface {
	// Close detaches the program and removes the link's pin.
	Close() error
	// Release lets go of the link but leaves the program attached (pinned),
	// for the next run to adopt.
	Release() error
	// Adopted says Attach took over an earlier run's attachment.
	Adopted() bool
	// Repin moves the link's pin to path (legacy: nothing to move).
	Repin(path string) error
}

// RunStats are a program's run count and total run time (bpf_prog_info's
// run_cnt and run_time_ns).
type RunStats struct {
	Runs    uint64
	RunTime time.Duration
}

// ProgramInfo is what the kernel tells of a loaded program.
type ProgramInfo struct {
	ID   uint32
	Name string // the object name the loader gave it (at most 15 bytes)
	Tag  string // hex SHA-1 prefix of its instructions
	Type string // e.g. "SchedCLS"
}

// Kernel is everything the manager asks of the kernel.
type Kernel interface {
	Mode() Mode
	Load(opts LoadOptions) (DataPlane, error)
	// Ifindex resolves a host interface name in the daemon's namespace.
	Ifindex(name string) (int, error)
	// Chain returns the IDs of the programs on an interface hook in run order,
	// and the chain's revision (0 in legacy mode).
	Chain(ifindex int, h module.Hook) ([]uint32, uint64, error)
	// ProgramInfo describes a loaded program by kernel ID (any program,
	// ours or not); an ID that is gone is an errdefs.ErrNotFound.
	ProgramInfo(id uint32) (ProgramInfo, error)
	Attach(req AttachRequest) (Link, error)
	// Pins lists the names pinned in a bpffs directory (none if it is absent).
	Pins(dir string) ([]string, error)
	// Unpin removes a pin: a pinned link nothing else holds is detached.
	// An empty directory is removed too; a missing path is no error.
	Unpin(path string) error
	// MakePinDir creates a pin directory (and its parents).
	MakePinDir(dir string) error
	// RemovePins removes a pin directory with everything in it.
	RemovePins(dir string) error
	// Needs reads what a data plane's object asks of the kernel: the
	// helpers its programs call, its map types, kernel BTF for CO-RE, the
	// bpf_skb_adjust_room flags it passes. It loads nothing.
	Needs(object string) ([]Need, error)
	// Probe answers each need (in order) from the kernel's feature probes,
	// each probed once per process.
	Probe(needs []Need) []Probe
	// MapBytes is the memory a data plane's maps take with sizes applied
	// (as Load applies them): per map MaxEntries × (KeySize + ValueSize), a
	// per-CPU map's value once per possible CPU. It loads nothing.
	MapBytes(object string, sizes map[string]uint32) (uint64, error)
}

// Plugins opens module control planes.
type Plugins interface {
	// Open loads a plugin and returns its New and, if exported, MapSizes.
	Open(path string) (module.NewFunc, module.MapSizesFunc, error)
	// Stat describes a module's file or directory.
	Stat(path string) (fs.FileInfo, error)
}
