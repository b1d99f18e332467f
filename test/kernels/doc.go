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
// The untagged tests check the counting that `make test` and the matrix use
// (scripts/kernels/tally.sh).
package kernels
