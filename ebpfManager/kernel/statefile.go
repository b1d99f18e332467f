package kernel

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
)

// StateFile is the eBPF Manager's declared state in a JSON file
// (ebpfmanager.Store), replaced atomically: written to a temporary file,
// synced, renamed over the old one, and the directory synced.
type StateFile struct{ Path string }

// Load reads the declared instances; no file is none.
func (s StateFile) Load() ([]ebpfmanager.Declared, error) {
	data, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.Path, err)
	}
	var out []ebpfmanager.Declared
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("declared state %s: %w", s.Path, err)
	}
	return out, nil
}

// Save replaces the file with ds (none: the file is removed).
func (s StateFile) Save(ds []ebpfmanager.Declared) error {
	if len(ds) == 0 {
		if err := os.Remove(s.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	data, err := json.Marshal(ds)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.Path), filepath.Base(s.Path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := errors.Join(tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), s.Path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(s.Path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}
