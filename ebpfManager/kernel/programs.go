package kernel

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// ProgramInfo describes any loaded program by its kernel ID; a program
// that is gone (detached and closed meanwhile) is an errdefs.ErrNotFound.
func (k *Kernel) ProgramInfo(id uint32) (ebpfmanager.ProgramInfo, error) {
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if errors.Is(err, os.ErrNotExist) {
		return ebpfmanager.ProgramInfo{}, fmt.Errorf("%w: program %d is gone", errdefs.ErrNotFound, id)
	}
	if err != nil {
		return ebpfmanager.ProgramInfo{}, fmt.Errorf("open program %d: %w", id, err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return ebpfmanager.ProgramInfo{}, fmt.Errorf("info of program %d: %w", id, err)
	}
	return ebpfmanager.ProgramInfo{ID: id, Name: info.Name, Tag: info.Tag, Type: info.Type.String()}, nil
}
