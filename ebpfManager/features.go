package ebpfmanager

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// Kernel features by the names GET /version reports and a refusal names. A
// helper is its C name ("bpf_loop"), a map type "map_" and the kernel's name
// of the type ("map_lpm_trie"); the rest are named here.
const (
	// FeatureTCX: TCX links (Linux 6.6); without them modules chain as
	// legacy clsact filters.
	FeatureTCX = "tcx"
	// FeatureBTF: the kernel's own BTF (/sys/kernel/btf/vmlinux), which
	// CO-RE relocations are resolved against.
	FeatureBTF = "btf"
	// FeatureBPFStats: BPF_ENABLE_STATS, the per-program run count and
	// run time that bpfStats turns on (Linux 5.8).
	FeatureBPFStats = "bpf_stats"
	// FeatureAdjustRoomDecap: bpf_skb_adjust_room's
	// BPF_F_ADJ_ROOM_DECAP_L3_IPV4/IPV6 flags (Linux 6.3); an older kernel
	// answers every such call with -EINVAL at run time. A data plane that
	// passes them needs it optionally (Need.Optional).
	FeatureAdjustRoomDecap = "adjust_room_decap"
	// FeatureTracing: BPF trampolines on BPF programs (fentry/fexit on a
	// TC program, with bpf_get_attach_cookie), what GET /ebpf/trace
	// attaches; without it a trace is refused with 422 (package trace's
	// probe, Supported). GET /ebpf/drops (a kfree_skb tracepoint program)
	// does not need it.
	FeatureTracing = "tracing"
)

// Need is one thing a data plane asks of the kernel, as read from its
// object file (Kernel.Needs).
type Need struct {
	// Feature is the name GET /version would report it by.
	Feature string
	// ProgramType is, for a helper, the type of the programs that call it
	// (helpers are offered per program type); "" for the rest.
	ProgramType string
	// By lists the programs or maps that need it.
	By []string
	// Optional: the data plane loads and runs without it; only the calls
	// that use it fail, at run time, unless the program falls back itself
	// (the bpf_skb_adjust_room decap flags). A missing optional need does
	// not refuse a module (Degraded).
	Optional bool
}

// Probe is what the kernel answered about one Need.
type Probe struct {
	Have bool
	// Err is set when the probe could not tell; such a need is not held
	// against the module (the kernel's own load decides).
	Err error
}

// KernelFeatures is what the kernel offers, probed at start.
type KernelFeatures struct {
	// Release is the kernel's release (uname -r).
	Release string
	// Features reports each named feature; a masked one is false.
	Features map[string]bool
	// Masked lists the features the daemon was told to treat as missing
	// (a test hook: NETMANAGER_MASK_FEATURES).
	Masked []string
	// Inconclusive holds the probes that could not tell, with why; their
	// features are reported false.
	Inconclusive map[string]string
}

// Missing returns the needs the kernel conclusively lacks that are not
// optional (probes[i] answers needs[i]; a missing answer or an inconclusive
// probe is not held against the module), merged by feature and sorted by it.
func Missing(needs []Need, probes []Probe) []Need { return lacking(needs, probes, false) }

// Degraded returns the optional needs the kernel conclusively lacks, as
// Missing does for the others: the module loads, and the calls that use them
// fail at run time unless it falls back.
func Degraded(needs []Need, probes []Probe) []Need { return lacking(needs, probes, true) }

func lacking(needs []Need, probes []Probe, optional bool) []Need {
	byFeature := map[string]*Need{}
	for i, n := range needs {
		if n.Optional != optional || i >= len(probes) || probes[i].Have || probes[i].Err != nil {
			continue
		}
		key := n.Feature + "\x00" + n.ProgramType
		if m := byFeature[key]; m != nil {
			m.By = append(m.By, n.By...)
			continue
		}
		n.By = slices.Clone(n.By)
		byFeature[key] = &n
	}
	out := make([]Need, 0, len(byFeature))
	for _, n := range byFeature {
		slices.Sort(n.By)
		n.By = slices.Compact(n.By)
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b Need) int {
		if c := strings.Compare(a.Feature, b.Feature); c != 0 {
			return c
		}
		return strings.Compare(a.ProgramType, b.ProgramType)
	})
	return out
}

// features names needs' features, sorted and once each.
func features(needs []Need) []string {
	var out []string
	for _, n := range needs {
		out = append(out, n.Feature)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// MissingFeaturesError refuses a module whose data plane needs what the
// kernel lacks. It is an errdefs.ErrUnprocessable (HTTP 422).
type MissingFeaturesError struct {
	Module  string
	Missing []Need // as Missing returns them
}

// Features names the missing features, sorted.
func (e *MissingFeaturesError) Features() []string { return features(e.Missing) }

func (e *MissingFeaturesError) Error() string {
	parts := make([]string, len(e.Missing))
	for i, n := range e.Missing {
		parts[i] = n.Feature
		if n.ProgramType != "" && n.ProgramType != "SchedCLS" {
			parts[i] += " in " + n.ProgramType + " programs"
		}
		if len(n.By) > 0 {
			parts[i] += " (" + strings.Join(n.By, ", ") + ")"
		}
	}
	return fmt.Sprintf("%v: module %q needs what this kernel lacks: %s", errdefs.ErrUnprocessable, e.Module, strings.Join(parts, "; "))
}

// Unwrap makes the error an errdefs.ErrUnprocessable.
func (e *MissingFeaturesError) Unwrap() error { return errdefs.ErrUnprocessable }

// checkFeatures refuses a module whose object needs what the kernel lacks,
// before anything of it is opened, loaded or pinned; degraded are the
// optional needs the kernel lacks (the module loads without them).
func (m *Manager) checkFeatures(name, obj string) (degraded []Need, err error) {
	needs, err := m.opts.Kernel.Needs(obj)
	if err != nil {
		return nil, fmt.Errorf("%w: module %q: read %s: %v", errdefs.ErrUnprocessable, name, filepath.Base(obj), err)
	}
	probes := m.opts.Kernel.Probe(needs)
	if missing := Missing(needs, probes); len(missing) > 0 {
		return nil, &MissingFeaturesError{Module: name, Missing: missing}
	}
	return Degraded(needs, probes), nil
}
