package kernel

import (
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/test/bpftest"
)

func TestHelperFeatureNames(t *testing.T) {
	for fn, want := range map[asm.BuiltinFunc]string{
		asm.FnLoop:             "bpf_loop",
		asm.FnRedirectPeer:     "bpf_redirect_peer",
		asm.FnRedirectNeigh:    "bpf_redirect_neigh",
		asm.FnL4CsumReplace:    "bpf_l4_csum_replace",
		asm.FnGetPrandomU32:    "bpf_get_prandom_u32",
		asm.FnSkbAdjustRoom:    "bpf_skb_adjust_room",
		asm.FnFibLookup:        "bpf_fib_lookup",
		asm.FnCheckMtu:         "bpf_check_mtu",
		asm.FnKtimeGetCoarseNs: "bpf_ktime_get_coarse_ns",
		asm.BuiltinFunc(999):   "bpf_helper_999",
	} {
		if got := helperFeature(fn); got != want {
			t.Errorf("helperFeature(%v) = %q, want %q", fn, got, want)
		}
	}
	if len(helpers) != 211 {
		t.Errorf("%d helper names for helpers 1-211: two helpers share a name", len(helpers))
	}
	if helpers["bpf_loop"] != asm.FnLoop {
		t.Errorf("bpf_loop maps back to %v", helpers["bpf_loop"])
	}
}

func TestKnownFeature(t *testing.T) {
	for name, want := range map[string]bool{
		"bpf_loop": true, "map_lru_hash": true, "map_lpm_trie": true, "tcx": true, "btf": true, "bpf_stats": true,
		"adjust_room_decap": true, "bpf_nope": false, "lru_hash": false, "map_nope": false, "": false,
	} {
		if got := KnownFeature(name); got != want {
			t.Errorf("KnownFeature(%q) = %v, want %v", name, got, want)
		}
	}
	for _, f := range Reported {
		if !KnownFeature(f) {
			t.Errorf("reported feature %q is not known", f)
		}
	}
}

// featureNames lists the feature names of needs.
func featureNames(needs []ebpfmanager.Need) []string {
	var out []string
	for _, n := range needs {
		out = append(out, n.Feature)
	}
	return out
}

// The shipped data planes' needs, as read from their objects: each has what
// its source uses and nothing it does not.
func TestNeedsOfShippedModules(t *testing.T) {
	cases := []struct {
		module      string
		want, never []string
	}{
		{"packetcounter", []string{"bpf_map_lookup_elem", "map_percpu_hash"}, []string{"bpf_loop", "btf", "adjust_room_decap"}},
		{"firewall", []string{"bpf_loop", "bpf_ktime_get_coarse_ns", "map_lpm_trie", "map_lru_hash", "map_percpu_array"},
			[]string{"btf", "adjust_room_decap", "bpf_redirect_peer"}},
		{"proxy", []string{"btf", "adjust_room_decap", "bpf_redirect_peer", "bpf_redirect_neigh", "bpf_fib_lookup", "bpf_skb_adjust_room", "map_ringbuf", "map_lru_hash"},
			[]string{"bpf_loop", "map_lpm_trie"}},
		{"sdwan", []string{"adjust_room_decap", "bpf_loop", "bpf_redirect_neigh", "bpf_fib_lookup", "map_lpm_trie"},
			[]string{"btf", "bpf_redirect_peer", "map_ringbuf"}},
	}
	k := &Kernel{}
	for _, tc := range cases {
		needs, err := k.Needs(bpftest.ModuleObject(t, "modules", tc.module))
		if err != nil {
			t.Fatalf("%s: %v", tc.module, err)
		}
		got := featureNames(needs)
		if !slices.IsSorted(got) {
			t.Errorf("%s: needs not sorted: %v", tc.module, got)
		}
		for _, f := range tc.want {
			if !slices.Contains(got, f) {
				t.Errorf("%s needs %v, missing %s", tc.module, got, f)
			}
		}
		for _, f := range tc.never {
			if slices.Contains(got, f) {
				t.Errorf("%s needs %v, but not %s", tc.module, got, f)
			}
		}
		for _, n := range needs {
			if n.Optional != (n.Feature == ebpfmanager.FeatureAdjustRoomDecap) {
				t.Errorf("%s: need %+v: only adjust_room_decap is optional", tc.module, n)
			}
			if n.Feature == "bpf_loop" && (n.ProgramType != "SchedCLS" || !slices.Equal(n.By, []string{"nm_egress", "nm_ingress"}) && tc.module == "firewall") {
				t.Errorf("%s: bpf_loop need %+v, want SchedCLS by nm_egress, nm_ingress", tc.module, n)
			}
		}
	}
}

func TestNeedsOfUnreadableObject(t *testing.T) {
	if _, err := (&Kernel{}).Needs("/nonexistent/x.o"); err == nil {
		t.Fatal("no error for an object that does not exist")
	}
}

// A hand-built collection: a helper per program type, a map, CO-RE.
func TestNeedsOfSpec(t *testing.T) {
	spec := &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{"m": {Type: ebpf.LRUCPUHash}},
		Programs: map[string]*ebpf.ProgramSpec{
			"a": {Type: ebpf.SchedCLS, Instructions: asm.Instructions{asm.FnLoop.Call(), asm.FnLoop.Call(), asm.Return()}},
			"b": {Type: ebpf.XDP, Instructions: asm.Instructions{asm.FnLoop.Call(), asm.Return()}},
		},
	}
	got := needsOf(spec)
	want := []ebpfmanager.Need{
		{Feature: "bpf_loop", ProgramType: "SchedCLS", By: []string{"a"}},
		{Feature: "bpf_loop", ProgramType: "XDP", By: []string{"b"}},
		{Feature: "map_lru_percpu_hash", By: []string{"m"}},
	}
	if len(got) != len(want) {
		t.Fatalf("needs %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Feature != want[i].Feature || got[i].ProgramType != want[i].ProgramType || !slices.Equal(got[i].By, want[i].By) {
			t.Errorf("need %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestAdjustRoomFlags(t *testing.T) {
	call := asm.FnSkbAdjustRoom.Call()
	ld := asm.LoadMem(asm.R4, asm.RFP, -8, asm.DWord)
	cases := []struct {
		name  string
		insns asm.Instructions
		want  []uint64
	}{
		{"immediate", asm.Instructions{asm.Mov.Imm(asm.R4, 0x81), call, asm.Return()}, []uint64{0x81}},
		{"computed", asm.Instructions{asm.Mov.Imm(asm.R4, 1), asm.Or.Imm(asm.R4, 0x100), call, asm.Return()}, []uint64{0x101}},
		{"through a register", asm.Instructions{asm.Mov.Imm(asm.R5, 0x80), asm.Mov.Reg(asm.R4, asm.R5), asm.Or.Imm(asm.R4, 1), call, asm.Return()}, []uint64{0x81}},
		{"32-bit", asm.Instructions{asm.Mov.Imm32(asm.R4, -1), asm.And.Imm32(asm.R4, 0x12), call, asm.Return()}, []uint64{0x12}},
		{"dword", asm.Instructions{asm.LoadImm(asm.R4, 1<<33|0x81, asm.DWord), call, asm.Return()}, []uint64{1<<33 | 0x81}},
		{"either branch", asm.Instructions{
			asm.JEq.Imm(asm.R2, 0, "v6"),
			asm.Mov.Imm(asm.R4, 0x81),
			asm.Ja.Label("call"),
			asm.Mov.Imm(asm.R4, 0x101).WithSymbol("v6"),
			call.WithSymbol("call"),
			asm.Return(),
		}, []uint64{0x81, 0x101}},
		{"from memory", asm.Instructions{ld, call, asm.Return()}, nil},
		{"clobbered by a call", asm.Instructions{asm.Mov.Imm(asm.R4, 0x81), asm.FnKtimeGetNs.Call(), call, asm.Return()}, nil},
		{"one path unknown", asm.Instructions{
			asm.JEq.Imm(asm.R2, 0, "mem"),
			asm.Mov.Imm(asm.R4, 0x81),
			asm.Ja.Label("call"),
			ld.WithSymbol("mem"),
			call.WithSymbol("call"),
			asm.Return(),
		}, nil},
		{"dead code", asm.Instructions{asm.Return(), asm.Mov.Imm(asm.R4, 0x81), call, asm.Return()}, nil},
		{"subprogram's argument", asm.Instructions{
			asm.Mov.Imm(asm.R4, 0x81),
			asm.Call.Label("sub"),
			asm.Return(),
			call.WithSymbol("sub"),
			asm.Return(),
		}, nil},
	}
	for _, tc := range cases {
		if got := adjustRoomFlags(tc.insns); !slices.Equal(got, tc.want) {
			t.Errorf("%s: flags %#x, want %#x", tc.name, got, tc.want)
		}
	}
}

// Raw jump offsets, as an object file has them: a dword load counts twice.
func TestAdjustRoomFlagsRawOffsets(t *testing.T) {
	jeq := asm.JEq.Imm(asm.R2, 0, "")
	jeq.Offset = 4 // over the dword load (2), the mov and the ja
	ja := asm.Ja.Label("")
	ja.Offset = 1
	insns := asm.Instructions{
		jeq,
		asm.LoadImm(asm.R4, 0x81, asm.DWord),
		asm.Mov.Imm(asm.R5, 0),
		ja,
		asm.Mov.Imm(asm.R4, 0x101),
		asm.FnSkbAdjustRoom.Call(),
		asm.Return(),
	}
	if got := adjustRoomFlags(insns); !slices.Equal(got, []uint64{0x81, 0x101}) {
		t.Errorf("flags %#x, want 0x81 and 0x101", got)
	}
}
