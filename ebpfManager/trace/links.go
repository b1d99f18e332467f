package trace

import (
	"fmt"

	"github.com/cilium/ebpf/link"
)

// LinksTo counts the tracing links (fentry, fexit, any owner's) whose target
// is the program of kernel id prog: none when no one traces it.
func LinksTo(prog uint32) (int, error) {
	var it link.Iterator
	defer it.Close()
	n := 0
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil {
			continue // gone meanwhile
		}
		if t := info.Tracing(); t != nil && t.TargetObjectId == prog {
			n++
		}
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("iterate links: %w", err)
	}
	return n, nil
}
