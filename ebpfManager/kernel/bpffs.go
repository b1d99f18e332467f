package kernel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultBPFFS is where the bpf file system is conventionally mounted.
const DefaultBPFFS = "/sys/fs/bpf"

// EnsureBPFFS makes sure dir can hold pins: its nearest existing ancestor must
// be on a bpf file system. When dir lies under /sys/fs/bpf and nothing is
// mounted there (as on hosts without systemd's mount), it mounts one and says
// so; the mount is left in place for whoever comes next.
func EnsureBPFFS(dir string) (mounted bool, err error) {
	onBPF, err := isBPFFS(nearestExisting(dir))
	if err != nil || onBPF {
		return false, err
	}
	if dir != DefaultBPFFS && !strings.HasPrefix(dir, DefaultBPFFS+"/") {
		return false, fmt.Errorf("pin dir %s is not on a bpf file system", dir)
	}
	if err := os.MkdirAll(DefaultBPFFS, 0o755); err != nil {
		return false, err
	}
	if err := unix.Mount("bpf", DefaultBPFFS, "bpf", 0, "mode=0700"); err != nil {
		return false, fmt.Errorf("mount bpffs on %s: %w", DefaultBPFFS, err)
	}
	return true, nil
}

func nearestExisting(dir string) string {
	for {
		if _, err := os.Stat(dir); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}

func isBPFFS(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Type == unix.BPF_FS_MAGIC, nil
}

// Pins lists the names pinned in a bpffs directory (none if it is absent).
func (k *Kernel) Pins(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list pins in %s: %w", dir, err)
	}
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out, nil
}

// Unpin removes a pin; a pinned link nothing else holds is detached.
func (k *Kernel) Unpin(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unpin %s: %w", path, err)
	}
	return nil
}

// MakePinDir creates a pin directory (and its parents).
func (k *Kernel) MakePinDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pin dir %s: %w", dir, err)
	}
	return nil
}

// RemovePins removes a pin directory with everything in it.
func (k *Kernel) RemovePins(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove pins %s: %w", dir, err)
	}
	return nil
}
