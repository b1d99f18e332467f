// Package kernel is the eBPF Manager's side of the kernel: loading data planes
// (cilium/ebpf) with their maps pinned, attaching programs with TCX links or
// legacy clsact/cls_bpf filters (netlink), reading chains back, and opening
// Go-plugin control planes. It implements ebpfmanager.Kernel and
// ebpfmanager.Plugins; every interface is resolved in the calling process's
// network namespace.
//
// It also answers what the kernel offers and what a data plane needs. A
// Prober probes features — TCX, each helper per program type and each map
// type (cilium/ebpf's features package), kernel BTF, BPF_ENABLE_STATS,
// bpf_skb_adjust_room's decap flags (a BPF_PROG_TEST_RUN) — each once per
// process, and answers "missing" for features it was told to mask (a test
// hook). Needs reads an object file without loading it: the helpers each
// program calls, the map types, CO-RE relocations (which need kernel BTF),
// and the flags passed to bpf_skb_adjust_room where a constant propagation
// over the program's control flow finds them constant (flags.go; the decap
// flags are an optional need). Kfuncs are left to the loader, which refuses
// a missing one before verifying.
package kernel
