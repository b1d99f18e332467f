// Package bpf holds the C headers shared by every data plane — packet parsing
// (parse.h), checksums (csum.h) and chain verdicts (verdicts.h). Its Go tests
// compile testdata programs against the headers and run them through
// BPF_PROG_TEST_RUN.
package bpf
