package netenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// sysctl is one setting under /proc/sys, read and written in the calling
// process's network namespace.
type sysctl struct {
	key  string // e.g. "net/ipv4/ip_forward"
	prev string
}

func sysctlPath(key string) string { return filepath.Join("/proc/sys", key) }

// setSysctl writes value and returns the previous value.
func setSysctl(key, value string) (string, error) {
	prev, err := os.ReadFile(sysctlPath(key))
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", key, err)
	}
	if err := os.WriteFile(sysctlPath(key), []byte(value), 0o644); err != nil {
		return "", fmt.Errorf("write sysctl %s=%s: %w", key, value, err)
	}
	return strings.TrimSpace(string(prev)), nil
}

// sysctlState is the file in the state dir holding the values the node had
// before the NetManager changed them, so a daemon restarted after a crash still
// restores the node's original values, not the crashed daemon's.
const sysctlStateFile = "sysctl.json"

func loadSysctlState(dir string) (map[string]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, sysctlStateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read saved sysctls: %w", err)
	}
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("saved sysctls %s: %w", filepath.Join(dir, sysctlStateFile), err)
	}
	return m, nil
}

func saveSysctlState(dir string, ss []sysctl) error {
	m := map[string]string{}
	for _, s := range ss {
		m[s.key] = s.prev
	}
	data, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, sysctlStateFile), data, 0o644); err != nil {
		return fmt.Errorf("save sysctls: %w", err)
	}
	return nil
}
