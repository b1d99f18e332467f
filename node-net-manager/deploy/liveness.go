package deploy

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// NetnsID identifies a network namespace: the device and inode of its nsfs
// file, the same through /proc/<pid>/ns/net and a /run/netns bind mount.
type NetnsID struct{ Dev, Ino uint64 }

// IsZero says whether id identifies nothing (it could not be read).
func (id NetnsID) IsZero() bool { return id == NetnsID{} }

// Liveness looks at the node's processes, to tell whether the workloads
// behind deployments still run (RemoveStale). ProcLiveness reads /proc;
// tests fake it.
type Liveness interface {
	// ProcessNetns returns the network namespace process pid is in; ok is
	// false when pid is not a running process (gone, or a zombie).
	ProcessNetns(pid int) (id NetnsID, ok bool)
	// NetnsInUse says whether any process is in the network namespace at
	// path (by its main thread).
	NetnsInUse(path string) bool
}

// ProcLiveness is the Liveness of the machine the daemon runs on, read from
// procfs (Proc, "/proc" when empty).
type ProcLiveness struct{ Proc string }

func (p ProcLiveness) proc() string {
	if p.Proc == "" {
		return "/proc"
	}
	return p.Proc
}

// ProcessNetns stats /proc/<pid>/ns/net; a zombie has none to stat, and
// its state is checked too.
func (p ProcLiveness) ProcessNetns(pid int) (NetnsID, bool) {
	if pid <= 0 {
		return NetnsID{}, false
	}
	dir := filepath.Join(p.proc(), strconv.Itoa(pid))
	id, err := netnsOf(filepath.Join(dir, "ns", "net"))
	if err != nil {
		return NetnsID{}, false
	}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil || !runningState(string(stat)) {
		return NetnsID{}, false
	}
	return id, true
}

// NetnsInUse compares the namespace at path with that of every process.
func (p ProcLiveness) NetnsInUse(path string) bool {
	want, err := netnsOf(path)
	if err != nil {
		return false
	}
	entries, err := os.ReadDir(p.proc())
	if err != nil {
		return false
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if id, err := netnsOf(filepath.Join(p.proc(), e.Name(), "ns", "net")); err == nil && id == want {
			return true
		}
	}
	return false
}

// netnsOf identifies the namespace file at path.
func netnsOf(path string) (NetnsID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return NetnsID{}, err
	}
	return NetnsID{Dev: uint64(st.Dev), Ino: st.Ino}, nil // Dev is not a uint64 on every architecture
}

// runningState reads the state from a /proc/<pid>/stat line, the field
// after the command (in parentheses, which may hold any character): a
// zombie or a dead task is not running.
func runningState(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	switch stat[i+2] {
	case 'Z', 'X', 'x':
		return false
	}
	return true
}
