package bpftest

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// OnOneCPU runs fn on a thread pinned to one CPU (the first the test may
// use) and then restores the thread's CPUs. Tests whose outcome depends on
// per-CPU kernel state need it: per-CPU maps and buckets, and the LRU hash
// maps' per-CPU free and pending lists, whose entries another CPU cannot
// evict, so a thread that moves between CPUs leaves the oldest entries of
// the CPU it left in place.
func OnOneCPU(t testing.TB, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var was, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &was); err != nil {
		t.Fatal(err)
	}
	for c := 0; c < len(one)*64; c++ {
		if was.IsSet(c) {
			one.Set(c)
			break
		}
	}
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.SchedSetaffinity(0, &was); err != nil {
			t.Error(err)
		}
	}()
	fn()
}
