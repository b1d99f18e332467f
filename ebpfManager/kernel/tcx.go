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
	l       link.Link
	pin     string
	adopted bool
	exp     *Expediter // detaching waits for a grace period too
}

func (t *tcxLink) Adopted() bool { return t.adopted }

// Release closes the link's descriptor; pinned, the program stays attached.
func (t *tcxLink) Release() error { return t.l.Close() }

// Repin moves the link's pin.
func (t *tcxLink) Repin(path string) error {
	if err := t.l.Pin(path); err != nil {
		return fmt.Errorf("move the pin of a tcx link to %s: %w", path, err)
	}
	t.pin = path
	return nil
}

// Close detaches the link and removes its pin.
func (t *tcxLink) Close() error {
	var errs []error
	if t.pin != "" {
		if err := t.l.Unpin(); err != nil {
			errs = append(errs, err)
		}
	}
	end := t.exp.Begin()
	errs = append(errs, t.l.Close())
	end()
	return errors.Join(errs...)
}

// attachTCX attaches prog where req.Place says, inside one of exp's
// windows (every TCX attach waits for an RCU grace period).
func attachTCX(req ebpfmanager.AttachRequest, prog *ebpf.Program, exp *Expediter) (ebpfmanager.Link, error) {
	if req.Adopt && req.PinPath != "" {
		if l, err := adoptTCX(req, prog, exp); l != nil || err != nil {
			return l, err
		}
	}
	var anchor link.Anchor
	switch req.Place.Anchor {
	case ebpfmanager.AnchorBefore:
		anchor = link.BeforeProgramByID(ebpf.ProgramID(req.Place.ProgID))
	case ebpfmanager.AnchorAfter:
		anchor = link.AfterProgramByID(ebpf.ProgramID(req.Place.ProgID))
	default:
		anchor = link.Tail()
	}
	end := exp.Begin()
	l, err := link.AttachTCX(link.TCXOptions{Interface: req.Ifindex, Program: prog, Attach: tcxAttachType(req.Hook),
		Anchor: anchor, ExpectedRevision: req.Place.Revision})
	end()
	if errors.Is(err, unix.ESTALE) {
		return nil, ebpfmanager.ErrChainChanged
	}
	if err != nil {
		return nil, fmt.Errorf("attach tcx to %s: %w", req.Ifname, err)
	}
	t := &tcxLink{l: l, exp: exp}
	if req.PinPath != "" {
		if err := os.MkdirAll(filepath.Dir(req.PinPath), 0o700); err != nil {
			t.Close()
			return nil, fmt.Errorf("pin dir: %w", err)
		}
		if err := l.Pin(req.PinPath); err != nil {
			t.Close()
			return nil, fmt.Errorf("pin tcx link on %s: %w", req.Ifname, err)
		}
		t.pin = req.PinPath
	}
	return t, nil
}

// adoptTCX swaps prog into the link an earlier run pinned at req.PinPath
// (one update: every packet meets the old program or the new one). It
// returns no link when there is nothing to adopt; a pinned link on another
// interface or hook is stale and removed.
func adoptTCX(req ebpfmanager.AttachRequest, prog *ebpf.Program, exp *Expediter) (ebpfmanager.Link, error) {
	if _, err := os.Stat(req.PinPath); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	l, err := link.LoadPinnedLink(req.PinPath, nil)
	if err != nil {
		return nil, fmt.Errorf("open pinned link %s: %w", req.PinPath, err)
	}
	info, err := l.Info()
	if err == nil && info.TCX() != nil && int(info.TCX().Ifindex) == req.Ifindex && ebpf.AttachType(info.TCX().AttachType) == tcxAttachType(req.Hook) {
		if err := l.Update(prog); err != nil {
			l.Close()
			return nil, fmt.Errorf("swap the program of the pinned link on %s: %w", req.Ifname, err)
		}
		return &tcxLink{l: l, pin: req.PinPath, adopted: true, exp: exp}, nil
	}
	// Not this interface's (its ifindex was reused, or it is gone).
	_ = l.Unpin()
	end := exp.Begin()
	l.Close()
	end()
	return nil, nil
}
