package ebpfmanager

import (
	"fmt"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// dropReasonName names a data plane's drop reason code (bpf/reasons.h) as
// its control plane does (module.DropReasoner): code 0 is "unspecified", a
// code the module does not name (or a module without DropReasons) is
// "reason N". The tracer and the drop counts of GET /metrics both use it.
func dropReasonName(mod module.Module, code uint32) string {
	if code == 0 {
		return "unspecified"
	}
	if r, ok := mod.(module.DropReasoner); ok {
		if name, ok := r.DropReasons()[code]; ok && name != "" {
			return name
		}
	}
	return fmt.Sprintf("reason %d", code)
}
