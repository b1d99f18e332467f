package netenv

import (
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
