package trace

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// ErrUnsupported marks the refusal of a kernel that will not run tracing
// programs on BPF programs (Supported, Start).
var ErrUnsupported = errors.New("tracing needs BPF trampolines (fentry/fexit on BPF programs), which this kernel refuses")

// UnsupportedError is that refusal with the kernel's own error, or this
// daemon's refusal of an architecture (Arch) whose kernels it does not trust
// with tracing.
type UnsupportedError struct {
	Kernel error  // what the kernel answered the probe, or why Arch is refused
	Arch   string // set when the refusal is the architecture's (archRefusal)
}

func (e *UnsupportedError) Error() string {
	if e.Arch != "" {
		return fmt.Sprintf("tracing is refused on %s: %v", e.Arch, e.Kernel)
	}
	return fmt.Sprintf("%v: %v; traces work on Debian's 6.1 and later kernels", ErrUnsupported, e.Kernel)
}

// archRefusal is the refusal of tracing on an architecture, or nil. On
// arm64, Debian's 6.12.118 kernel panicked in our kernel matrix ("Kernel
// text patching generated an invalid instruction", an Oops - BRK at a traced
// program's patched entry) while a trace attached to module programs that
// carried traffic: a debugging aid must not be able to take a node down.
func archRefusal(goarch string) error {
	if goarch == "arm64" {
		return &UnsupportedError{Arch: goarch, Kernel: errors.New("Debian's arm64 6.12 kernel panicked patching a traced program's entry " +
			"(Oops - BRK in BPF text patching) in this project's kernel matrix; the drop monitor works")}
	}
	return nil
}

// Is makes the error an ErrUnsupported.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

// Unwrap is the kernel's error.
func (e *UnsupportedError) Unwrap() error { return e.Kernel }

// Supported says whether the kernel runs tracing programs on BPF programs:
// nil if it does, an *UnsupportedError if it refuses them, any other error
// if the probe could not tell (the kernel's own load then decides). The
// kernel is probed once per process.
func Supported() error { return supported() }

var supported = sync.OnceValue(probe)

// probeFunc is the BTF name of the probe's target program.
const probeFunc = "nm_trace_probe"

// probe loads a sched_cls program with BTF function info (what a chain's
// program is) and an fexit program on it that calls bpf_get_attach_cookie
// (what the tracer does), and attaches it with a cookie. Only the target's
// failure is inconclusive.
func probe() error {
	if err := archRefusal(runtime.GOARCH); err != nil {
		return err
	}
	fn := &btf.Func{Name: probeFunc, Linkage: btf.GlobalFunc, Type: &btf.FuncProto{
		Return: &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed},
		Params: []btf.FuncParam{{Name: "skb", Type: &btf.Pointer{Target: &btf.Struct{Name: "__sk_buff"}}}},
	}}
	target, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Name: probeFunc, Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{
			btf.WithFuncMetadata(asm.Mov.Imm(asm.R0, -1), fn),
			asm.Return(),
		},
	}, ebpf.ProgramOptions{LogDisabled: true})
	if err != nil {
		return fmt.Errorf("probe tracing: load the target program: %w", err)
	}
	defer target.Close()
	exit, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Name: "nm_trace_probex", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceFExit, License: "GPL",
		AttachTarget: target, AttachTo: probeFunc,
		Instructions: asm.Instructions{
			asm.FnGetAttachCookie.Call(),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	}, ebpf.ProgramOptions{LogDisabled: true})
	if err != nil {
		return &UnsupportedError{Kernel: fmt.Errorf("fexit program: %w", err)}
	}
	defer exit.Close()
	l, err := link.AttachTracing(link.TracingOptions{Program: exit, AttachType: ebpf.AttachTraceFExit, Cookie: 1})
	if err != nil {
		return &UnsupportedError{Kernel: fmt.Errorf("attach the fexit program: %w", err)}
	}
	return l.Close()
}
