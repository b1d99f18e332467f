// Package kernels holds the tests the kernel matrix (scripts/kernels/run.sh,
// `make test-kernels`) runs inside each kernel it boots under qemu, besides
// test/verifier's budget and the data-plane tests of bpf/ and the modules.
//
// TestDaemonAcrossKernels (build tag kernelmatrix, so a plain `go test ./...`
// on the host neither builds nor runs it) drives the real daemon: two
// services deployed through its HTTP API, the packet counter, a firewall
// and the eBPF proxy loaded, the chain mode checked against the kernel (TCX
// from 6.6 on, legacy clsact below, in the kernel itself as well as in
// GET /ebpf), then a kill -9 and a restart with --persist after which the
// firewall must still deny what it denied and pass what it passed. It needs
// root, NETMANAGER_BIN and NETMANAGER_MODULES, and fails — never skips —
// when it cannot run. Namespaces and "containers" come from test/nstest;
// the daemons are started here, with a deadline long enough for software
// emulation (nstest.StartDaemon allows 15 s).
//
// TestTraceAcrossKernels (same tag, same setup: newScenario) follows
// packets through that chain with GET /ebpf/trace: a denied ping on srv's
// veth ends in the firewall's drop naming rule "denyin" with no proxy hop; a
// TCP flow to srv's service IP leaves cli through the chain the daemon
// reports there and ends in the proxy's redirect (host= the service IP
// still matches it); each filter (proto, port, verdict, direction, service,
// iface, host) shows only what it selects; a trace ended by its count, its
// duration or the client leaves no tracing link on our programs
// (trace.LinksTo). GET /ebpf/drops under a UDP flood the firewall denies:
// lines within the rate over the flood plus a second's burst, lines and
// suppressed adding up to the firewall's drops, and the data path's rate
// with the monitor against the same flood without it (MATRIX lines). It
// needs a kernel that runs fentry/fexit on BPF programs, as the matrix's do.
//
// The untagged tests check the counting that `make test` and the matrix use
// (scripts/kernels/tally.sh).
package kernels
