package kernel

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
)

// Needs reads an object file and lists what its data plane asks of the
// kernel (needsOf). It loads nothing.
func (k *Kernel) Needs(object string) ([]ebpfmanager.Need, error) {
	spec, err := ebpf.LoadCollectionSpec(object)
	if err != nil {
		return nil, fmt.Errorf("read the data plane: %w", err)
	}
	return needsOf(spec), nil
}

// needsOf lists what a collection asks of the kernel, sorted by feature:
// every helper each program calls (per program type), every map type, the
// kernel's BTF when a program carries CO-RE relocations, and, optionally, the
// bpf_skb_adjust_room decap flags when a call passes them (adjustRoomFlags):
// a kernel without them fails those calls at run time, which a program may
// handle (falling back to a call without them), so they refuse no module.
// Kfuncs are left to the loader: it refuses a missing one before the
// verifier runs, and a weak one is optional.
func needsOf(spec *ebpf.CollectionSpec) []ebpfmanager.Need {
	type key struct {
		feature, progType string
		optional          bool
	}
	by := map[key][]string{}
	add := func(feature, progType, who string) {
		k := key{feature, progType, feature == ebpfmanager.FeatureAdjustRoomDecap}
		if !slices.Contains(by[k], who) {
			by[k] = append(by[k], who)
		}
	}
	for name, p := range spec.Programs {
		for i := range p.Instructions {
			ins := &p.Instructions[i]
			if ins.IsBuiltinCall() {
				add(helperFeature(asm.BuiltinFunc(ins.Constant)), p.Type.String(), name)
			}
			if btf.CORERelocationMetadata(ins) != nil {
				add(ebpfmanager.FeatureBTF, "", name)
			}
		}
		for _, flags := range adjustRoomFlags(p.Instructions) {
			if flags&adjRoomDecapL3 != 0 {
				add(ebpfmanager.FeatureAdjustRoomDecap, "", name)
			}
		}
	}
	for name, m := range spec.Maps {
		add(mapFeature(m.Type), "", name)
	}
	out := make([]ebpfmanager.Need, 0, len(by))
	for k, who := range by {
		slices.Sort(who)
		out = append(out, ebpfmanager.Need{Feature: k.feature, ProgramType: k.progType, By: who, Optional: k.optional})
	}
	slices.SortFunc(out, func(a, b ebpfmanager.Need) int {
		if c := strings.Compare(a.Feature, b.Feature); c != 0 {
			return c
		}
		return strings.Compare(a.ProgramType, b.ProgramType)
	})
	return out
}

// helperFeature is a helper's C name: FnLoop is "bpf_loop", FnL4CsumReplace
// "bpf_l4_csum_replace"; a number cilium/ebpf has no name for is
// "bpf_helper_<n>".
func helperFeature(fn asm.BuiltinFunc) string {
	s, ok := strings.CutPrefix(fn.String(), "Fn")
	if !ok {
		return fmt.Sprintf("bpf_helper_%d", uint32(fn))
	}
	var b strings.Builder
	b.WriteString("bpf_")
	prev := rune(0)
	for _, r := range s {
		if unicode.IsUpper(r) && prev != 0 && (unicode.IsLower(prev) || unicode.IsDigit(prev)) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
		prev = r
	}
	return b.String()
}

// helpers maps helper names back to their numbers (Linux's, which cilium/ebpf
// names up to 211).
var helpers = func() map[string]asm.BuiltinFunc {
	out := map[string]asm.BuiltinFunc{}
	for fn := asm.BuiltinFunc(1); fn <= 211; fn++ {
		out[helperFeature(fn)] = fn
	}
	return out
}()

// mapTypeNames are the kernel's names of the map types (BPF_MAP_TYPE_*,
// lower case), by cilium/ebpf's value.
var mapTypeNames = map[ebpf.MapType]string{
	ebpf.Hash: "hash", ebpf.Array: "array", ebpf.ProgramArray: "prog_array", ebpf.PerfEventArray: "perf_event_array",
	ebpf.PerCPUHash: "percpu_hash", ebpf.PerCPUArray: "percpu_array", ebpf.StackTrace: "stack_trace",
	ebpf.CGroupArray: "cgroup_array", ebpf.LRUHash: "lru_hash", ebpf.LRUCPUHash: "lru_percpu_hash",
	ebpf.LPMTrie: "lpm_trie", ebpf.ArrayOfMaps: "array_of_maps", ebpf.HashOfMaps: "hash_of_maps",
	ebpf.DevMap: "devmap", ebpf.SockMap: "sockmap", ebpf.CPUMap: "cpumap", ebpf.XSKMap: "xskmap",
	ebpf.SockHash: "sockhash", ebpf.CGroupStorage: "cgroup_storage", ebpf.ReusePortSockArray: "reuseport_sockarray",
	ebpf.PerCPUCGroupStorage: "percpu_cgroup_storage", ebpf.Queue: "queue", ebpf.Stack: "stack",
	ebpf.SkStorage: "sk_storage", ebpf.DevMapHash: "devmap_hash", ebpf.StructOpsMap: "struct_ops",
	ebpf.RingBuf: "ringbuf", ebpf.InodeStorage: "inode_storage", ebpf.TaskStorage: "task_storage",
	ebpf.BloomFilter: "bloom_filter", ebpf.UserRingbuf: "user_ringbuf", ebpf.CgroupStorage: "cgrp_storage",
	ebpf.Arena: "arena",
}

// mapFeature is a map type's feature name: "map_" and the kernel's name.
func mapFeature(t ebpf.MapType) string {
	if n, ok := mapTypeNames[t]; ok {
		return "map_" + n
	}
	return "map_" + strings.ToLower(t.String())
}

// programType finds a program type by cilium/ebpf's name of it ("SchedCLS").
func programType(name string) (ebpf.ProgramType, bool) {
	for t := ebpf.ProgramType(1); t <= 32; t++ {
		if t.String() == name {
			return t, true
		}
	}
	return 0, false
}
