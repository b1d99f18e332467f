// Package trace is the eBPF Manager's tracer: fentry and fexit programs
// (BPF_PROG_TYPE_TRACING) attached to a chain's TC programs only while a trace
// or the drop monitor runs, so that nothing is attached, and nothing costs,
// when no one traces.
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
package trace
