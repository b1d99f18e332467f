package ebpfmanager

import (
	"fmt"
	"sort"

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

// dropCounts reads a data plane's nm_drops (bpf/reasons.h: a per-CPU array
// by reason code), sums each code over the CPUs and names it as the module
// does (dropReasonName). It returns only non-zero counts, sorted by reason;
// codes with the same name are summed. A data plane without the map has
// none.
func dropCounts(mod module.Module, dp *module.DataPlane) ([]DropCount, error) {
	if dp == nil || dp.Maps[module.DropsMap] == nil {
		return nil, nil
	}
	sums := map[string]uint64{}
	err := module.ReadPerCPU(dp.Maps[module.DropsMap], func(code uint32, vs []uint64) {
		var n uint64
		for _, v := range vs {
			n += v
		}
		if n > 0 {
			sums[dropReasonName(mod, code)] += n
		}
	})
	if err != nil {
		return nil, fmt.Errorf("drop counts: %w", err)
	}
	out := make([]DropCount, 0, len(sums))
	for reason, n := range sums {
		out = append(out, DropCount{Reason: reason, Count: n})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Reason < out[b].Reason })
	return out, nil
}
