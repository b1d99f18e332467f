package kernel

import (
	"fmt"
	"io"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// EnableRunStats turns on the kernel's BPF run-time statistics (run count
// and run time of every program, BPF_ENABLE_STATS) until the returned closer
// is closed. While on, every program run costs two extra clock reads.
func EnableRunStats() (io.Closer, error) {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil, fmt.Errorf("enable BPF run-time stats: %w", err)
	}
	return c, nil
}
