// Package linked combines a chain of module programs into one program: a
// prototype for issue 24 ("cheap as the node grows"). It is NOT wired into
// the eBPF Manager: nothing in the daemon calls it yet.
//
// # What it does
//
// Link takes the programs of one hook's chain in priority order — each a
// Part: one module instance's entry point (nm_ingress or nm_egress) as its
// CollectionSpec holds it, plus that instance's loaded maps — and returns
// one SchedCLS ProgramSpec: a generated main (nm_chain) that calls each
// part's entry point as a BPF-to-BPF function, returns the first verdict
// other than Next (TC_ACT_UNSPEC, -1) and otherwise the last part's, which
// is what TCX does with a chain of links (bpf/verdicts.h). Load links and
// loads it. The parts' specs are not modified.
//
//   - Names: every symbol of part i (entry point, subprograms, labels) and
//     its BTF function name become Prefix(i, name)+symbol, e.g.
//     "m1_firewall_7__classify", so same-named functions of two modules (the
//     firewall's and sdwan's global classify) or of two instances of one
//     module do not clash.
//   - Maps: every map load is bound (asm.Instruction.AssociateMap) to the
//     part's own *ebpf.Map by name, .rodata included, so the combined
//     program shares all state with the instance (its control plane, its
//     own program, its pins) and each part reads its own nm_instance: an
//     nm_drop in part i stamps instance i's id into cb[2] (bpf/reasons.h),
//     which the drop monitor needs.
//   - BTF: function info (renamed, linkage kept) and line info ride on the
//     instructions' metadata, and cilium/ebpf marshals them at load; the
//     main gets the first entry point's prototype and a line of its own
//     (the kernel wants function and line info for every function or none,
//     so Link refuses a mix of parts with and without BTF). Global
//     functions stay global: the verifier checks each of them once on its
//     own, module entry points included, so a part costs the verifier what
//     it costs alone. Measured on this kernel (6.18.44): packetcounter +
//     firewall + proxy linked, 98,551 processed instructions against
//     42 + 26,030 + 72,474 = 98,546 for the parts (TestVerifierCost).
//   - Stack: the main uses none, so the deepest call chain is the deepest
//     part's (proxy: 400+88 of 512 bytes).
//
// Parts must be SchedCLS programs with one license and attach type. The
// parts' maps must stay open until the program is loaded; the loaded
// program then holds its own references.
//
// The kernel allows a program 64 distinct maps (MaxMaps), and a combined
// program uses all its parts' maps: at the time of writing packetcounter 1,
// firewall 17, proxy 22, sdwan 23 and the test module dropmark 2 (.rodata
// counted) — all five do not fit in one program. Link refuses that
// (ErrTooManyMaps); Split cuts a chain into consecutive segments that fit,
// one combined program and one link each, still in order.
//
// # What was measured (BenchmarkAttach, BenchmarkChainChange, BenchmarkPerPacket, BenchmarkTraffic)
//
// The benchmarks compare, on veths in a namespace they create, today's
// chaining (one TCX link per instance, interface and hook, placed with an
// anchor after the hook's last program) with one TCX link per interface and
// hook running the linked program: for packetcounter → firewall → proxy,
// 5 links per veth (3 ingress, 2 egress; the proxy has no egress program)
// against 2. Figures of one run on this 2-vCPU machine (6.18.44, shared:
// load average ~5 meanwhile), 500 veths:
//
//   - Attaching the chain: today 24.8 s (49.6 ms per veth), linked 10.9 s
//     (21.8 ms per veth, 0.28 s of it loading the two combined programs).
//     A TCX attach or detach costs ~10 ms whatever the program (a
//     synchronize_rcu under rtnl), so linking divides a new service's
//     attach cost by the modules per hook but cannot go below one RCU wait
//     per hook: ~20 ms for a deploy with ingress and egress chains.
//     Detaching costs as much again (today 32.8 s, linked 10.8 s).
//   - Adding a module to the chain on every veth: today 11.0 s (2 more
//     anchored attaches per veth), linked 0.26 s (0.26 s loading the two new
//     combined programs, then link.Update of 1,000 links in ~1 ms: an
//     atomic in-place swap, no RCU wait).
//   - Over legacy tc (clsact + cls_bpf, no RCU wait), today 0.17 s and
//     linked 0.29 s to attach; a change 0.03 s and 0.17 s: there linking
//     saves nothing but filters, and its verification dominates.
//   - Per packet (BPF_PROG_TEST_RUN, lowest of 75 samples): the parts
//     24–96 ns each above a no-op's 27 ns, 204 ns together; linked 234 ns
//     above the no-op (×1.15): a BPF-to-BPF call and return costs ~7 ns
//     here (retpolines and the SRSO "safe RET" return thunk of this AMD
//     host), and a test run does not show what TCX spends between programs.
//     On live UDP traffic through one veth (the sender's CPU time per
//     datagram, which includes the whole receive path) the linked chain
//     cost 0.93× the three links (488 against 522 ns, medians over 25
//     alternating rounds; 0.76–1.10× over eight runs), the whole path
//     0.99×.
//
// Loading a combined program re-verifies every part: the two programs of
// this chain took 0.14–0.6 s to load across runs (the proxy's 72k processed
// instructions are most of it), paid once per distinct chain and hook.
//
// # Since then
//
// The daemon now opens a window of expedited RCU grace periods around each
// TCX attach and detach (kernel.Expediter, config expediteAttach), which
// takes the ~10 ms wait above down to ~30 µs without changing the chain's
// shape: a load onto 500 services went from 8.8 s to 0.27 s and a deploy
// with three modules from +55 ms to +17 ms (BenchmarkScale). Linking would
// still save the per-link work and the per-program dispatch, at the price
// of the integration below; it stays a prototype.
//
// # What integrating it would need (not done)
//
//   - Chains as the unit: the manager decides today per (instance,
//     interface, hook) where a link goes (chain.go: anchors, priorities,
//     ExpectedRevision). Linked, it would compute per (interface, hook) the
//     ordered list of instances, group interfaces by that list (one combined
//     program per distinct list, reference-counted, verified once, closed
//     when its last interface goes), and keep one link per (interface, hook),
//     still placed relative to foreign programs. A service deploy attaches
//     that link (or Updates it when the hook already has one of ours); a
//     module load, unload, priority change or in-place update (PUT
//     /ebpf/{id}, update.go) loads the new combined programs and Updates
//     the links, so a failed load leaves the old chain running everywhere.
//     The distinct-chain count matters: SLA modules (DESIGN §5.4) make
//     chains per service, and each distinct chain costs a full verification
//     (~0.2 s with the proxy) — e.g. the operator's modules linked and SLA
//     modules as further links after them, or chains linked only where many
//     interfaces share them, would bound that.
//   - Pins and restart (readopt.go, declared.go): link pins would be per
//     interface and hook (e.g. <pinDir>/chains/<ifindex>-<hook>) instead of
//     per instance; a restart reloads the instances with their pinned maps
//     (the loader already recreates .rodata), links the chains anew and
//     Updates each pinned link (adoptTCX already swaps a pinned link's
//     program). The stray-pin and drift checks would compare chains, not
//     per-instance links.
//   - Doctor, foreign programs, chain reading (doctor.go, foreign.go,
//     Kernel.Chain): the kernel now shows one program ID per hook. Out-of-order
//     and missing-attachment checks must map that ID back to the chain
//     it was linked from (keep chain → program ID, or read the combined
//     program's BTF function names, which carry Prefix and the part name).
//     Instance.ProgramID and the attachments in the API would point to the
//     combined program or report the chain.
//   - Trace (trace.go, trace/): fentry/fexit target each instance's program
//     today. Linked, they would target the parts' entry functions inside the
//     combined program (AttachTarget = the combined program, AttachTo =
//     Symbol(i, name, "nm_ingress"); every part keeps its BTF function
//     info), with a cookie per part. Not testable here: fentry/fexit loads
//     are EPERM on this kernel (as trace.Supported reports). The drop monitor
//     needs nothing: nm_drop's cb[2] still carries the instance id.
//   - Per-module run-time stats (metrics.go, RunStats): the kernel counts run
//     time per program, so it would report only the whole chain; per-module
//     time would need the parts to count it themselves or fentry/fexit.
//   - Legacy tc (legacy.go): the same combined program fits one cls_bpf
//     filter per hook (priority order no longer matters among our own
//     programs), and a chain change is a filter replace. Nothing here does
//     that yet; BenchmarkAttach and BenchmarkChainChange measure it beside
//     TCX (a legacy filter costs no RCU wait).
//   - Fallbacks: a part that is not SchedCLS, or an object without BTF beside
//     ones with it, is refused by Link; the daemon would need to fall back to
//     per-instance links for such a module.
package linked
