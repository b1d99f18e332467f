// Package trace is the eBPF Manager's tracer and drop monitor: fentry and
// fexit programs (BPF_PROG_TYPE_TRACING) attached to a chain's TC programs
// only while a trace runs (Session), and one program on the kfree_skb
// tracepoint only while the drop monitor runs (DropSession), so that nothing
// is attached, and nothing costs, when no one traces.
//
// The programs (bpf/trace.bpf.c, compiled by `go generate` and embedded, so
// the daemon needs no build step) see the traced program's argument as the
// kernel's struct sk_buff. fentry reads the packet as the program sees it on
// entry (a module may rewrite it) and evaluates the Filter; fexit emits one
// Event per hop of a matching packet into a ring buffer: the link's cookie
// (which target), the verdict, the drop reason bpf/reasons.h's nm_drop left
// in the control block, the sk_buff pointer, the CPU and the time. A per-CPU
// token bucket bounds the events; what it refuses is counted (Lost).
//
// A Session's programs are loaded once per target (the attach target is fixed
// at load) on the session's shared maps. Close detaches everything. The
// redirect target of a TC_ACT_REDIRECT is not reported: bpf_redirect keeps
// it in per-CPU kernel state (bpf_redirect_info, moved into bpf_net_context
// in 6.11) that a tracing program cannot read portably.
//
// The kernel needs BPF trampolines for BPF program targets and
// bpf_get_attach_cookie for tracing links (Linux 6.0). Supported probes that
// once per process (a tiny TC program with BTF function info and an fexit
// program on it); a kernel that refuses it (the 6.18.44-fc CI kernel: the
// fexit program's load is EPERM) makes Start fail with an UnsupportedError
// before anything is created, and nothing else.
//
// The drop monitor (bpf/drops.bpf.c, StartDrops) needs none of that: it is a
// tp_btf program on kfree_skb (BPF_TRACE_RAW_TP, no trampoline), so it runs
// on that kernel too, and it runs only when a packet is freed as dropped.
// It reports a packet whose control block carries bpf/reasons.h's mark
// (nm_drop: the instance id nm_instance the loader set, the reason, the
// detail), and a packet without it only when the kernel's drop reason is
// SKB_DROP_REASON_TC_INGRESS or _TC_EGRESS (Linux 5.19 and later; the values
// are read with CO-RE): an unattributed TC drop (Instance 0). The same
// reasons give the Hook; any other leaves it HookUnknown. The DropFilter
// (interfaces, hooks per interface, protocol, host, port) is evaluated in the
// kernel on the packet as it is at the drop; a per-CPU token bucket bounds
// the events (checked before the packet is read when nothing in it is
// filtered) and counts what it refuses (Lost). Events are submitted without
// waking the reader, which polls with Read's deadline.
//
// What the two programs share is bpf/common.bpf.h: the kernel types they
// read, the filter's struct config, the packet's struct flow and its parser
// (a cursor over kernel memory: bpf/parse.h reads a TC program's packet
// directly and does not fit a struct sk_buff pointer), the filter's packet
// match and the per-CPU token bucket. Its Go side is common.go: config,
// rawFlow, the ring-buffer reader (events) and the lost count.
package trace
