// Package verifier holds the verifier budget: every eBPF program the project
// ships (each module's data plane, the test modules that are meant to load,
// the bpf/ test programs) is loaded on the running kernel and must verify
// with at most Budget processed instructions. The kernel matrix
// (scripts/kernels) runs the same test inside each kernel it boots, and
// `make bench` tabulates the counts per kernel (VERIFIER_OUT).
package verifier
