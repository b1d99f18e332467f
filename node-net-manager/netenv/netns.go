package netenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netns"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// NetnsDir is where named namespaces are bind-mounted.
const NetnsDir = "/run/netns"

// ContainerNetns returns the namespace path of pid. It refuses a PID that does
// not exist, or one that lives in the NetManager's own namespace (attaching to
// it would move the veth peer into the node itself).
func (e *Env) ContainerNetns(pid int) (string, error) {
	p := filepath.Join("/proc", strconv.Itoa(pid), "ns", "net")
	theirs, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w: pid %d does not exist", errdefs.ErrInvalid, pid)
	}
	if err != nil {
		return "", fmt.Errorf("namespace of pid %d: %w", pid, err)
	}
	ours, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return "", fmt.Errorf("own namespace: %w", err)
	}
	if os.SameFile(theirs, ours) {
		return "", fmt.Errorf("%w: pid %d shares the NetManager's network namespace; a container needs its own", errdefs.ErrInvalid, pid)
	}
	return p, nil
}

// CreateNetns makes the named namespace name and returns its path; an existing
// one is a conflict and is left alone.
func (e *Env) CreateNetns(name string) (string, error) {
	path := filepath.Join(NetnsDir, name)
	if _, err := os.Stat(path); err == nil {
		return "", fmt.Errorf("%w: network namespace %s already exists", errdefs.ErrConflict, name)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return "", fmt.Errorf("current namespace: %w", err)
	}
	defer orig.Close()
	h, err := netns.NewNamed(name)
	if err == nil {
		h.Close()
	}
	// NewNamed may have switched this thread even when it failed: always go back.
	if serr := netns.Set(orig); serr != nil {
		// The thread is stuck elsewhere: keep it locked so it ends with its
		// goroutine instead of running other work there.
		runtime.LockOSThread()
		return "", fmt.Errorf("return from namespace %s: %w", name, serr)
	}
	if errors.Is(err, syscall.EEXIST) {
		return "", fmt.Errorf("%w: network namespace %s already exists", errdefs.ErrConflict, name)
	}
	if err != nil {
		return "", fmt.Errorf("create namespace %s: %w", name, err)
	}
	return path, nil
}

// DeleteNetns removes a named namespace.
func (e *Env) DeleteNetns(name string) error {
	if err := netns.DeleteNamed(name); err != nil {
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return nil
}

// ProcessExists says whether pid is a running process (in the NetManager's
// PID namespace); a zombie, dead but not yet reaped, is not.
func (e *Env) ProcessExists(pid int) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	return processRunning(string(stat))
}

// processRunning reads the state from a /proc/<pid>/stat line: the field
// after the command, which is in parentheses and may hold any character.
func processRunning(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	state := stat[i+2]
	return state != 'Z' && state != 'X' && state != 'x'
}
