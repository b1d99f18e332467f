// Package bpf holds the C headers shared by every data plane — packet parsing
// (parse.h), checksums (csum.h), chain verdicts (verdicts.h) and drop reasons
// (reasons.h: nm_drop). Its Go tests compile testdata programs against the
// headers and run them through BPF_PROG_TEST_RUN.
package bpf
