package linked

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/oakestra/netmanager/test/bpftest"
)

// TestLinkSymbols: every part's symbols are renamed apart, calls and jumps
// follow them, and the parts' own specs are left as they were. No kernel
// needed.
func TestLinkSymbols(t *testing.T) {
	a, b := asmSpec(1, Next, false), asmSpec(2, 0, false)
	before := fmt.Sprint(a.Instructions)
	noMaps := func(ps *ebpf.ProgramSpec) *ebpf.ProgramSpec {
		cp := ps.Copy()
		var keep asm.Instructions
		for _, ins := range cp.Instructions {
			if ins.IsLoadFromMap() {
				ins = asm.Mov.Imm(ins.Dst, 0).WithMetadata(ins.Metadata).WithReference("")
			}
			keep = append(keep, ins)
		}
		cp.Instructions = keep
		return cp
	}
	spec, err := Link("", []Part{{Name: "alpha", Program: noMaps(a)}, {Name: "beta-2", Program: noMaps(b)}})
	if err != nil {
		t.Fatal(err)
	}
	offs, err := spec.Instructions.SymbolOffsets()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"nm_chain", "nm_chain__out",
		"m0_alpha__nm_ingress", "m0_alpha__skip", "m0_alpha__verdict",
		"m1_beta_2__nm_ingress", "m1_beta_2__skip", "m1_beta_2__verdict"} {
		if _, ok := offs[want]; !ok {
			t.Errorf("no symbol %s in %v", want, offs)
		}
	}
	if offs["nm_chain"] != 0 {
		t.Errorf("the main is not first: %v", offs)
	}
	for _, ins := range spec.Instructions {
		if r := ins.Reference(); r != "" {
			if _, ok := offs[r]; !ok {
				t.Errorf("reference %s has no symbol", r)
			}
		}
	}
	if fmt.Sprint(a.Instructions) != before {
		t.Error("Link changed a part's spec")
	}
}

func TestLinkRefuses(t *testing.T) {
	ok := asmSpec(1, Next, false)
	gpl := ok.Copy()
	gpl.License = "GPL"
	xdp := ok.Copy()
	xdp.Type = ebpf.XDP
	unnamed := ok.Copy()
	unnamed.Instructions[0] = unnamed.Instructions[0].WithSymbol("")
	withBTF := ok.Copy()
	withBTF.Instructions[0] = btf.WithFuncMetadata(withBTF.Instructions[0], &btf.Func{Name: "nm_ingress", Type: &btf.FuncProto{}})
	for _, c := range []struct {
		name  string
		parts []Part
		want  string
	}{
		{"none", nil, "no parts"},
		{"nil program", []Part{{Name: "x"}}, "has no program"},
		{"license", []Part{{Name: "a", Program: ok}, {Name: "b", Program: gpl}}, "license"},
		{"type", []Part{{Name: "a", Program: ok}, {Name: "b", Program: xdp}}, "want SchedCLS"},
		{"entry", []Part{{Name: "a", Program: unnamed}}, "not a symbol"},
		{"mixed BTF", []Part{{Name: "a", Program: ok}, {Name: "b", Program: withBTF}}, "all or none"},
		{"missing map", []Part{{Name: "a", Program: ok, Maps: map[string]*ebpf.Map{}}}, "not among the instance's maps"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Link("", c.parts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Link: %v, want an error with %q", err, c.want)
			}
		})
	}
}

// TestSplit: chains are cut where the next part's maps would pass the
// limit; an instance's maps count once however often it appears.
func TestSplit(t *testing.T) {
	inst := func(name string) Part {
		return Part{Name: name, Program: asmSpec(1, Next, false),
			Maps: map[string]*ebpf.Map{"counter": new(ebpf.Map), ".rodata": new(ebpf.Map)}}
	}
	a, b, c, d, e := inst("a"), inst("b"), inst("c"), inst("d"), inst("e")
	for _, tc := range []struct {
		name  string
		parts []Part
		max   int
		want  []int
	}{
		{"fits", []Part{a, b}, 4, []int{2}},
		{"pairs", []Part{a, b, c, d, e}, 4, []int{2, 2, 1}},
		{"shared instance", []Part{a, a, b, b, a}, 4, []int{5}},
		{"one each", []Part{a, b, c}, 2, []int{1, 1, 1}},
		{"default limit", []Part{a, b, c, d, e}, 0, []int{5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			segs, err := Split(tc.parts, tc.max)
			if err != nil {
				t.Fatal(err)
			}
			if got := segLens(segs); !slices.Equal(got, tc.want) {
				t.Errorf("segments %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := Split([]Part{a}, 1); !errors.Is(err, ErrTooManyMaps) {
		t.Errorf("a part over the limit alone: %v, want ErrTooManyMaps", err)
	}
	var many []Part
	for i := 0; i < MaxMaps/2+1; i++ {
		many = append(many, inst(fmt.Sprint(i)))
	}
	if _, err := Link("", many); !errors.Is(err, ErrTooManyMaps) {
		t.Errorf("Link over %d maps: %v, want ErrTooManyMaps", MaxMaps, err)
	}
}

func segLens(segs [][]Part) []int {
	var n []int
	for _, s := range segs {
		n = append(n, len(s))
	}
	return n
}

// TestAsmChains runs hand-written parts linked in priority order: a verdict
// other than next ends the chain with it, next (-1, zero-extended or not)
// goes on, and every part uses its own maps and its own .rodata.
func TestAsmChains(t *testing.T) {
	bpftest.RequireRoot(t)
	type step struct {
		verdict int32
		zext    bool
	}
	for _, c := range []struct {
		name    string
		steps   []step
		verdict int32
		ran     int // how many parts ran
	}{
		{"one next", []step{{Next, false}}, Next, 1},
		{"one drop", []step{{2, false}}, 2, 1},
		{"all next", []step{{Next, false}, {Next, true}, {Next, false}}, Next, 3},
		{"drop stops", []step{{Next, false}, {2, false}, {Next, false}}, 2, 2},
		{"ok stops", []step{{0, false}, {Next, false}}, 0, 1},
		{"redirect last", []step{{Next, true}, {Next, false}, {7, false}}, 7, 3},
		{"pipe stops", []step{{Next, false}, {3, true}, {2, false}}, 3, 2},
		{"zero-extended next", []step{{Next, true}, {Next, true}}, Next, 2},
		{"five", []step{{Next, false}, {Next, false}, {Next, false}, {Next, false}, {2, false}}, 2, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			parts := make([]Part, len(c.steps))
			for i, s := range c.steps {
				parts[i] = Part{Name: fmt.Sprintf("asm%d", i), Program: asmSpec(int32(i+1), s.verdict, s.zext),
					Maps: asmInstance(t, uint32(100+i))}
			}
			prog, err := Load("", parts, ebpf.ProgramOptions{})
			if err != nil {
				t.Fatalf("%+v", err)
			}
			defer prog.Close()
			v, _, ctx := bpftest.RunCtx(t, nil, prog, udpFrame(t, 0), bpftest.SkbCtx{})
			if v != c.verdict {
				t.Errorf("verdict %s, want %s", bpftest.Verdict(v), bpftest.Verdict(c.verdict))
			}
			order := uint32(0)
			for i := 0; i < c.ran; i++ {
				order = order*10 + uint32(i+1)
			}
			if ctx.CB[0] != order {
				t.Errorf("run order %d, want %d", ctx.CB[0], order)
			}
			if want := uint32(100 + c.ran - 1); ctx.CB[2] != want {
				t.Errorf("cb[2] (the last part's .rodata id) = %d, want %d", ctx.CB[2], want)
			}
			for i, p := range parts {
				want := uint64(0)
				if i < c.ran {
					want = 1
				}
				if n := counterOf(t, p.Maps); n != want {
					t.Errorf("part %d's own counter = %d, want %d", i, n, want)
				}
			}
		})
	}
}

// TestModuleChains links real module instances (the objects `make build`
// made) and runs packets through them: verdicts in chain order, each part's
// maps and nm_instance its instance's own, same-named global functions
// (firewall's and sdwan's "classify") kept apart.
func TestModuleChains(t *testing.T) {
	bpftest.RequireRoot(t)
	pc1 := loadInstance(t, "modules", "packetcounter", 1)
	pc2 := loadInstance(t, "modules", "packetcounter", 2)
	fwDeny11 := loadInstance(t, "modules", "firewall", 11)
	fwDeny12 := loadInstance(t, "modules", "firewall", 12)
	fwAllow13 := loadInstance(t, "modules", "firewall", 13)
	proxy := loadInstance(t, "modules", "proxy", 21)
	sdwan := loadInstance(t, "modules", "sdwan", 31)
	dm := loadInstance(t, "test-modules", "dropmark", 41)
	setFirewallDeny(t, fwDeny11, true)
	setFirewallDeny(t, fwDeny12, true)
	setDropmarkTOS(t, dm, 0x10)

	const ifindex = 1 // lo: every namespace has it; the modules only key by it
	in := func(xs ...*instance) []Part {
		ps := make([]Part, len(xs))
		for i, x := range xs {
			ps[i] = x.part(t, "nm_ingress")
		}
		return ps
	}
	load := func(t *testing.T, parts []Part) *ebpf.Program {
		t.Helper()
		prog, err := Load("", parts, ebpf.ProgramOptions{})
		if err != nil {
			t.Fatalf("%+v", err)
		}
		t.Cleanup(func() { prog.Close() })
		return prog
	}
	run := func(t *testing.T, prog *ebpf.Program, tos uint8) (int32, bpftest.SkbCtx) {
		t.Helper()
		v, _, ctx := bpftest.RunCtx(t, nil, prog, udpFrame(t, tos), bpftest.SkbCtx{Ifindex: ifindex})
		return v, ctx
	}
	mustRun := func(t *testing.T, prog *ebpf.Program, tos uint8) int32 {
		t.Helper()
		v, _ := run(t, prog, tos)
		return v
	}

	t.Run("counter shares the instance's map", func(t *testing.T) {
		before := pcPackets(t, pc1, ifindex, 0)
		prog := load(t, in(pc1, fwAllow13, proxy))
		if v, _ := run(t, prog, 0); v != Next {
			t.Fatalf("verdict %s, want next", bpftest.Verdict(v))
		}
		// The instance's own program counts into the same map.
		if v, _, _ := bpftest.RunCtx(t, nil, pc1.coll.Programs["nm_ingress"], udpFrame(t, 0), bpftest.SkbCtx{Ifindex: ifindex}); v != Next {
			t.Fatalf("packetcounter alone: %s", bpftest.Verdict(v))
		}
		if n := pcPackets(t, pc1, ifindex, 0) - before; n != 2 {
			t.Errorf("instance 1 counted %d packets, want 2 (one linked, one alone)", n)
		}
	})

	t.Run("drop stops the chain", func(t *testing.T) {
		b1, b2 := pcPackets(t, pc1, ifindex, 0), pcPackets(t, pc2, ifindex, 0)
		prog := load(t, in(pc1, dm, pc2))
		if v, _ := run(t, prog, 0x10); v != 2 {
			t.Fatalf("marked packet: %s, want SHOT", bpftest.Verdict(v))
		}
		if v, _ := run(t, prog, 0); v != Next {
			t.Fatalf("unmarked packet: %s, want next", bpftest.Verdict(v))
		}
		if n := pcPackets(t, pc1, ifindex, 0) - b1; n != 2 {
			t.Errorf("the counter before dropmark counted %d, want 2", n)
		}
		if n := pcPackets(t, pc2, ifindex, 0) - b2; n != 1 {
			t.Errorf("the counter after dropmark counted %d, want 1 (the dropped packet never reaches it)", n)
		}
		if n := droppedOf(t, dm); n != 1 {
			t.Errorf("dropmark's own map counted %d drops, want 1", n)
		}
	})

	for _, c := range []struct {
		name  string
		chain []*instance
		want  uint32
	}{
		{"allow then deny", []*instance{fwAllow13, fwDeny11}, 11},
		{"deny 11 first", []*instance{fwDeny11, fwDeny12}, 11},
		{"deny 12 first", []*instance{fwDeny12, fwDeny11}, 12},
		{"sdwan classify and firewall classify", []*instance{sdwan, pc1, fwDeny12}, 12},
	} {
		t.Run("nm_drop instance: "+c.name, func(t *testing.T) {
			prog := load(t, in(c.chain...))
			v, ctx := run(t, prog, 0)
			if v != 2 {
				t.Fatalf("verdict %s, want SHOT", bpftest.Verdict(v))
			}
			id, ok := ctx.Instance()
			if !ok {
				t.Fatalf("no reason in the control block: %+v", ctx.CB)
			}
			if id != c.want {
				t.Errorf("cb[2] = %d, want the dropping instance's %d", id, c.want)
			}
		})
	}

	t.Run("egress", func(t *testing.T) {
		parts := []Part{pc1.part(t, "nm_egress"), fwAllow13.part(t, "nm_egress"), sdwan.part(t, "nm_egress"), dm.part(t, "nm_egress")}
		prog := load(t, parts)
		b := pcPackets(t, pc1, ifindex, 1)
		if v, _ := run(t, prog, 0x10); v != 2 {
			t.Fatalf("verdict %s, want SHOT from dropmark", bpftest.Verdict(v))
		}
		if n := pcPackets(t, pc1, ifindex, 1) - b; n != 1 {
			t.Errorf("egress counted %d, want 1", n)
		}
	})

	t.Run("all five, split at the map limit", func(t *testing.T) {
		parts := in(pc1, fwAllow13, sdwan, proxy, dm)
		n := len(mapSet(parts...))
		_, err := Link("", parts)
		if n > MaxMaps && !errors.Is(err, ErrTooManyMaps) {
			t.Fatalf("%d maps: Link says %v, want ErrTooManyMaps", n, err)
		}
		if n <= MaxMaps && err != nil {
			t.Fatalf("%d maps: %v", n, err)
		}
		segs, err := Split(parts, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n > MaxMaps && len(segs) < 2 {
			t.Fatalf("%d maps in %d segments", n, len(segs))
		}
		t.Logf("five modules use %d maps: %d segment(s) of %v parts", n, len(segs), segLens(segs))
		// Run the segments one after the other, as TCX runs their links.
		for _, c := range []struct {
			tos  uint8
			want int32
		}{{0, Next}, {0x10, 2}} {
			v := int32(Next)
			for _, seg := range segs {
				if v = mustRun(t, load(t, seg), c.tos); v != Next {
					break
				}
			}
			if v != c.want {
				t.Errorf("ToS %#x: %s, want %s", c.tos, bpftest.Verdict(v), bpftest.Verdict(c.want))
			}
		}
	})
}

// TestVerifierCost loads packetcounter + firewall + proxy linked and
// reports the verifier's processed instructions against the parts' own
// programs: the module entry points are global functions, verified once each,
// so the combination should cost about the sum.
func TestVerifierCost(t *testing.T) {
	bpftest.RequireRoot(t)
	chain := []*instance{
		loadInstance(t, "modules", "packetcounter", 1),
		loadInstance(t, "modules", "firewall", 2),
		loadInstance(t, "modules", "proxy", 3),
	}
	var parts []Part
	var sum uint32
	var names []string
	for _, in := range chain {
		parts = append(parts, in.part(t, "nm_ingress"))
		n := verified(t, in.coll.Programs["nm_ingress"])
		sum += n
		names = append(names, fmt.Sprintf("%s %d", in.name, n))
	}
	prog, err := Load("", parts, ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer prog.Close()
	n := verified(t, prog)
	t.Logf("processed instructions: linked %d; parts %s = %d (linked/sum %.3f)", n, strings.Join(names, " + "), sum, float64(n)/float64(sum))
	t.Logf("verifier log of the linked program: %s", strings.TrimSpace(prog.VerifierLog))
	if n > sum+sum/10 {
		t.Errorf("the linked program costs the verifier %d instructions, more than 110%% of the parts' %d", n, sum)
	}
}

// TestLinkedBTF: the kernel got function info for every function, renamed
// per part and with its linkage (global functions stay global), line info
// for the parts and the main, and the combined program uses exactly the
// maps of the instances' own programs (.rodata included).
func TestLinkedBTF(t *testing.T) {
	bpftest.RequireRoot(t)
	chain := []*instance{
		loadInstance(t, "modules", "packetcounter", 1),
		loadInstance(t, "modules", "firewall", 2),
		loadInstance(t, "modules", "sdwan", 3),
	}
	var parts []Part
	wantMaps := map[ebpf.MapID]bool{}
	wantLines := 1
	for _, in := range chain {
		parts = append(parts, in.part(t, "nm_ingress"))
		info, err := in.coll.Programs["nm_ingress"].Info()
		if err != nil {
			t.Fatal(err)
		}
		ids, ok := info.MapIDs()
		if !ok {
			t.Fatal("no map IDs")
		}
		for _, id := range ids {
			wantMaps[id] = true
		}
		lines, err := info.LineInfos()
		if err != nil {
			t.Fatal(err)
		}
		wantLines += len(lines)
	}
	prog, err := Load("", parts, ebpf.ProgramOptions{})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	funcs, err := info.FuncInfos()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for i, f := range funcs {
		got[f.Func.Name] = f.Func.Linkage.String()
		if i == 0 && f.Func.Name != "nm_chain" {
			t.Errorf("the first function is %s, want the main nm_chain", f.Func.Name)
		}
		if i > 0 && !strings.HasPrefix(f.Func.Name, "m0_") && !strings.HasPrefix(f.Func.Name, "m1_") && !strings.HasPrefix(f.Func.Name, "m2_") {
			t.Errorf("function %s is not renamed", f.Func.Name)
		}
	}
	for name, linkage := range map[string]string{"nm_chain": "global",
		"m0_packetcounter_1__nm_ingress": "global",
		"m1_firewall_2__nm_ingress":      "global", "m1_firewall_2__classify": "global", "m1_firewall_2__match_chunk": "static",
		"m2_sdwan_3__nm_ingress": "global", "m2_sdwan_3__classify": "global", "m2_sdwan_3__best_bit": "static"} {
		if got[name] != linkage {
			t.Errorf("function %s: linkage %q, want %q", name, got[name], linkage)
		}
	}
	if len(got) != len(funcs) {
		t.Errorf("%d function infos but %d distinct names: %v", len(funcs), len(got), got)
	}
	lines, err := info.LineInfos()
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != wantLines {
		t.Errorf("%d line infos, want %d (the parts' and the main's)", len(lines), wantLines)
	}
	ids, _ := info.MapIDs()
	gotMaps := map[ebpf.MapID]bool{}
	for _, id := range ids {
		gotMaps[id] = true
	}
	if fmt.Sprint(gotMaps) != fmt.Sprint(wantMaps) {
		t.Errorf("the linked program uses maps %v, want the instances' own %v", gotMaps, wantMaps)
	}
}
