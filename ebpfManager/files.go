package ebpfmanager

import (
	"os"
	"syscall"
)

// unsafeFile says why a module file must not be loaded ("" if it may): one
// that others than its owner can write, or, for a daemon running as root,
// one that root does not own — either could be swapped under the daemon,
// and it runs the file's code in the kernel and in its own process.
func unsafeFile(st os.FileInfo, euid int) string {
	if st.Mode().Perm()&0o022 != 0 {
		return "is group- or world-writable"
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && euid == 0 && sys.Uid != 0 {
		return "is not owned by root"
	}
	return ""
}
