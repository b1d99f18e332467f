package kernel

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Kernel implements ebpfmanager.Kernel.
type Kernel struct {
	mode  ebpfmanager.Mode
	probe *Prober
	exp   *Expediter // windows around TCX attaches and detaches; nil: none
	mu    sync.Mutex
	// legacy mode: our filters per ifindex, and the clsact qdiscs we created
	filters map[int]int
	clsact  map[int]bool
}

// New returns a Kernel in the given mode: "tcx", "legacy", or "auto" (TCX
// when the kernel has it, by feature probe), probing with a Prober of its own.
func New(mode string) (*Kernel, error) { return NewWithProber(mode, nil) }

// NewWithProber is New with the Prober that answers its feature probes
// (nil: one of its own, nothing masked); a masked "tcx" makes auto legacy.
func NewWithProber(mode string, p *Prober) (*Kernel, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock limit: %w", err)
	}
	if p == nil {
		var err error
		if p, err = NewProber(nil); err != nil {
			return nil, err
		}
	}
	k := &Kernel{probe: p, filters: map[int]int{}, clsact: map[int]bool{}}
	tcx := p.Have(ebpfmanager.FeatureTCX).Have
	switch mode {
	case "auto", "":
		k.mode = ebpfmanager.ModeLegacy
		if tcx {
			k.mode = ebpfmanager.ModeTCX
		}
	case "tcx":
		if !tcx {
			return nil, errors.New("tc mode tcx: this kernel has no TCX (needs 6.6 or later)")
		}
		k.mode = ebpfmanager.ModeTCX
	case "legacy":
		k.mode = ebpfmanager.ModeLegacy
	default:
		return nil, fmt.Errorf("tc mode %q: want auto, tcx or legacy", mode)
	}
	return k, nil
}

// Expedite makes the Kernel open one of e's windows around every TCX attach
// and detach (nil: none, each waits a normal grace period). Call it before
// the first Attach.
func (k *Kernel) Expedite(e *Expediter) { k.exp = e }

// Probe answers each need from the Kernel's Prober.
func (k *Kernel) Probe(needs []ebpfmanager.Need) []ebpfmanager.Probe { return k.probe.Probe(needs) }

// Mode reports how programs are chained.
func (k *Kernel) Mode() ebpfmanager.Mode { return k.mode }

// HaveTCX probes for TCX: attaching to an interface that cannot exist fails
// with "no such device" where TCX exists and "not supported" where it does not.
func HaveTCX() bool {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.SchedCLS, License: "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()},
	})
	if err != nil {
		return false
	}
	defer prog.Close()
	l, err := link.AttachTCX(link.TCXOptions{Interface: int(^uint32(0) >> 1), Program: prog, Attach: ebpf.AttachTCXIngress})
	if err == nil {
		l.Close()
		return true
	}
	return !errors.Is(err, ebpf.ErrNotSupported)
}

// Ifindex resolves an interface name.
func (k *Kernel) Ifindex(name string) (int, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("no interface %s: %w", name, err)
	}
	return l.Attrs().Index, nil
}

// Chain returns the program IDs on a hook in run order.
func (k *Kernel) Chain(ifindex int, h module.Hook) ([]uint32, uint64, error) {
	if k.mode == ebpfmanager.ModeLegacy {
		ids, err := legacyChain(ifindex, h)
		return ids, 0, err
	}
	return tcxChain(ifindex, h)
}

// Attach attaches a data plane's program for a hook.
func (k *Kernel) Attach(req ebpfmanager.AttachRequest) (ebpfmanager.Link, error) {
	dp, ok := req.DataPlane.(*dataPlane)
	if !ok {
		return nil, fmt.Errorf("data plane %T was not loaded by this kernel", req.DataPlane)
	}
	prog := dp.coll.Programs[req.Hook.Program()]
	if prog == nil {
		return nil, fmt.Errorf("data plane has no %s", req.Hook.Program())
	}
	if k.mode == ebpfmanager.ModeLegacy {
		return k.attachLegacy(req, prog)
	}
	return attachTCX(req, prog, k.exp)
}
