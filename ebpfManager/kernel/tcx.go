package kernel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/module"
)

func tcxAttachType(h module.Hook) ebpf.AttachType {
	if h == module.HookEgress {
		return ebpf.AttachTCXEgress
	}
	return ebpf.AttachTCXIngress
}

func tcxChain(ifindex int, h module.Hook) ([]uint32, uint64, error) {
	res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: tcxAttachType(h)})
	if err != nil {
		return nil, 0, fmt.Errorf("query tcx %s on ifindex %d: %w", h, ifindex, err)
	}
	ids := make([]uint32, len(res.Programs))
	for i, p := range res.Programs {
		ids[i] = uint32(p.ID)
	}
	return ids, res.Revision, nil
}

type tcxLink struct {
	l   link.Link
	pin string
}

func (t *tcxLink) Close() error {
	var errs []error
	if t.pin != "" {
		if err := t.l.Unpin(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, t.l.Close())
	return errors.Join(errs...)
}

func attachTCX(req ebpfmanager.AttachRequest, prog *ebpf.Program) (ebpfmanager.Link, error) {
	var anchor link.Anchor
	switch req.Place.Anchor {
	case ebpfmanager.AnchorBefore:
		anchor = link.BeforeProgramByID(ebpf.ProgramID(req.Place.ProgID))
	case ebpfmanager.AnchorAfter:
		anchor = link.AfterProgramByID(ebpf.ProgramID(req.Place.ProgID))
	default:
		anchor = link.Tail()
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: req.Ifindex, Program: prog, Attach: tcxAttachType(req.Hook),
		Anchor: anchor, ExpectedRevision: req.Place.Revision})
	if errors.Is(err, unix.ESTALE) {
		return nil, ebpfmanager.ErrChainChanged
	}
	if err != nil {
		return nil, fmt.Errorf("attach tcx to %s: %w", req.Ifname, err)
	}
	t := &tcxLink{l: l}
	if req.PinPath != "" {
		if err := os.MkdirAll(filepath.Dir(req.PinPath), 0o700); err != nil {
			l.Close()
			return nil, fmt.Errorf("pin dir: %w", err)
		}
		if err := l.Pin(req.PinPath); err != nil {
			l.Close()
			return nil, fmt.Errorf("pin tcx link on %s: %w", req.Ifname, err)
		}
		t.pin = req.PinPath
	}
	return t, nil
}
