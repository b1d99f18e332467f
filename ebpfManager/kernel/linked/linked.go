package linked

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// Next is the verdict that passes a packet on to the next module
// (TC_ACT_UNSPEC, TCX_NEXT; bpf/verdicts.h's NM_NEXT). Any other verdict a
// part returns ends the combined program with that verdict.
const Next = -1

// DefaultName is the combined program's name when Link is given none.
const DefaultName = "nm_chain"

// MaxMaps is how many distinct maps one program may use (the kernel's
// MAX_USED_MAPS). A combined program uses the union of its parts' maps, so
// this, not the instruction count, is what first limits how many modules
// one program can hold: packetcounter 1, firewall 17, proxy 22, sdwan 23
// (.rodata included) and dropmark 2 make 65.
const MaxMaps = 64

// ErrTooManyMaps is returned by Link when the parts use more than MaxMaps
// maps together; Split cuts such a chain into programs that fit.
var ErrTooManyMaps = errors.New("the parts use more maps than one program may")

// Part is one module instance's program in a chain.
type Part struct {
	// Name names the part in the combined program: its functions are
	// renamed Prefix(i, Name)+symbol (see Symbol). The instance's id or
	// "<module>_<id>" is a good choice; it need not be unique (the index
	// keeps the symbols apart) but is what bpftool and the verifier log show.
	Name string
	// Program is the instance's entry point (nm_ingress or nm_egress) as its
	// CollectionSpec holds it: instructions flattened by the ELF reader,
	// calls and map loads still by name. It is not modified.
	Program *ebpf.ProgramSpec
	// Maps are the instance's loaded maps by name (Collection.Maps), its
	// global data (.rodata with nm_instance, .data, .bss) included: every
	// map the program names must be here, and the combined program uses
	// exactly these maps, so its state is the instance's.
	Maps map[string]*ebpf.Map
}

// FromCollection makes the Part for one program of a loaded instance: spec
// is the CollectionSpec the instance was loaded from (its instructions; map
// sizes and variables do not matter here), coll the loaded collection whose
// maps the part uses. ok is false when the object has no such program.
func FromCollection(name string, spec *ebpf.CollectionSpec, coll *ebpf.Collection, program string) (p Part, ok bool) {
	ps := spec.Programs[program]
	if ps == nil {
		return Part{}, false
	}
	return Part{Name: name, Program: ps, Maps: coll.Maps}, true
}

// Prefix is what part i's symbols (and BTF function names) are prefixed
// with in a combined program: "m<i>_<name>__", the name reduced to the
// characters BTF allows in an identifier.
func Prefix(i int, name string) string {
	return fmt.Sprintf("m%d_%s__", i, sanitize(name))
}

// Symbol is the name function sym of part i (named name) has in the
// combined program, e.g. Symbol(1, "firewall_7", "classify") is
// "m1_firewall_7__classify". A part's entry point is its program's name.
func Symbol(i int, name, sym string) string { return Prefix(i, name) + sym }

func sanitize(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Link combines parts, in chain (priority) order, into one SchedCLS
// program: a generated main function calls each part's entry point as a
// BPF-to-BPF function, returns the first verdict other than Next, and
// returns Next (the last part's verdict) when every part said next.
//
// Each part's instructions are copied; its functions are renamed with
// Prefix (so same-named functions of different modules, such as two
// global "classify", do not clash), its BTF function info renamed with
// them and its line info kept; its map loads are bound to the part's own
// *ebpf.Map (Part.Maps), .rodata included, so nm_instance and every map are
// the instance's. A global (non-static) function stays global: the verifier
// checks it once on its own, as it did in the part's own program — module
// entry points are global functions, so each part is verified once, with
// the context argument, and the main only sees "returns a scalar".
//
// The combined program is never loaded here (Load does), and the parts'
// maps must stay open until it is. Parts must be SchedCLS programs with the
// same license and attach type, and either all carry BTF function info (as
// clang -g objects do) or none (hand-written instructions): the kernel
// wants function info for every function or for none.
func Link(name string, parts []Part) (*ebpf.ProgramSpec, error) {
	if len(parts) == 0 {
		return nil, errors.New("link: no parts")
	}
	if name == "" {
		name = DefaultName
	}
	first := parts[0].Program
	if first == nil {
		return nil, fmt.Errorf("link: part 0 (%s) has no program", parts[0].Name)
	}
	withBTF := len(first.Instructions) > 0 && btf.FuncMetadata(&first.Instructions[0]) != nil
	withLines := false
	entries := make([]string, len(parts))
	for i, p := range parts {
		ps := p.Program
		if ps == nil {
			return nil, fmt.Errorf("link: part %d (%s) has no program", i, p.Name)
		}
		if ps.Type != ebpf.SchedCLS {
			return nil, fmt.Errorf("link: part %d (%s): %s is a %s program, want SchedCLS", i, p.Name, ps.Name, ps.Type)
		}
		if ps.License != first.License {
			return nil, fmt.Errorf("link: part %d (%s): license %q differs from part 0's %q", i, p.Name, ps.License, first.License)
		}
		if ps.AttachType != first.AttachType {
			return nil, fmt.Errorf("link: part %d (%s): attach type %s differs from part 0's %s", i, p.Name, ps.AttachType, first.AttachType)
		}
		if ps.ByteOrder != nil && first.ByteOrder != nil && ps.ByteOrder != first.ByteOrder {
			return nil, fmt.Errorf("link: part %d (%s): byte order differs from part 0's", i, p.Name)
		}
		if len(ps.Instructions) == 0 {
			return nil, fmt.Errorf("link: part %d (%s): %s has no instructions", i, p.Name, ps.Name)
		}
		entry := ps.Instructions[0].Symbol()
		if entry == "" {
			return nil, fmt.Errorf("link: part %d (%s): the first instruction of %s is not a symbol (its entry point)", i, p.Name, ps.Name)
		}
		if has := btf.FuncMetadata(&ps.Instructions[0]) != nil; has != withBTF {
			return nil, fmt.Errorf("link: part %d (%s): BTF function info on some parts but not on others (all or none)", i, p.Name)
		}
		if ps.Instructions[0].Source() != nil {
			withLines = true
		}
		entries[i] = Symbol(i, p.Name, entry)
	}
	if withLines {
		for i, p := range parts {
			if p.Program.Instructions[0].Source() == nil {
				return nil, fmt.Errorf("link: part %d (%s): BTF line info on some parts but not on others (all or none)", i, p.Name)
			}
		}
	}

	if n := len(mapSet(parts...)); n > MaxMaps {
		return nil, fmt.Errorf("link: %w: %d, the kernel allows %d", ErrTooManyMaps, n, MaxMaps)
	}

	mainSym := sanitize(name)
	insns := chainMain(mainSym, entries)
	if withBTF {
		proto, err := ctxProto(first)
		if err != nil {
			return nil, err
		}
		insns[0] = btf.WithFuncMetadata(insns[0], &btf.Func{Name: mainSym, Type: proto, Linkage: btf.GlobalFunc})
	}
	if withLines {
		insns[0] = insns[0].WithSource(asm.Comment(fmt.Sprintf("%s: %d linked modules", mainSym, len(parts))))
	}
	for i, p := range parts {
		part, err := relink(i, p)
		if err != nil {
			return nil, err
		}
		insns = append(insns, part...)
	}
	return &ebpf.ProgramSpec{
		Name:         name,
		Type:         ebpf.SchedCLS,
		AttachType:   first.AttachType,
		SectionName:  first.SectionName,
		License:      first.License,
		ByteOrder:    first.ByteOrder,
		Instructions: insns,
	}, nil
}

// Split cuts a chain, in order, into the fewest consecutive segments of
// which each uses at most maxMaps distinct maps (MaxMaps when 0), for one
// combined program each (attached one after the other, they run the chain
// in order). A part that alone uses more is an error.
func Split(parts []Part, maxMaps int) ([][]Part, error) {
	if maxMaps <= 0 {
		maxMaps = MaxMaps
	}
	var out [][]Part
	var cur []Part
	used := map[*ebpf.Map]bool{}
	for i, p := range parts {
		mine := mapSet(p)
		if len(mine) > maxMaps {
			return nil, fmt.Errorf("split: part %d (%s): %w: %d alone", i, p.Name, ErrTooManyMaps, len(mine))
		}
		n := len(used)
		for m := range mine {
			if !used[m] {
				n++
			}
		}
		if n > maxMaps {
			out, cur, used = append(out, cur), nil, map[*ebpf.Map]bool{}
		}
		cur = append(cur, p)
		for m := range mine {
			used[m] = true
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out, nil
}

// mapSet is the distinct maps the parts' programs use: the instances' maps
// their map loads name (or carry already). A name missing from a part's
// Maps is left for relink to report.
func mapSet(parts ...Part) map[*ebpf.Map]bool {
	set := map[*ebpf.Map]bool{}
	for _, p := range parts {
		if p.Program == nil {
			continue
		}
		for _, ins := range p.Program.Instructions {
			if !ins.IsLoadFromMap() {
				continue
			}
			if m := p.Maps[ins.Reference()]; m != nil {
				set[m] = true
			} else if m, ok := ins.Map().(*ebpf.Map); ok && m != nil {
				set[m] = true
			}
		}
	}
	return set
}

// Load links parts and loads the combined program.
func Load(name string, parts []Part, opts ebpf.ProgramOptions) (*ebpf.Program, error) {
	spec, err := Link(name, parts)
	if err != nil {
		return nil, err
	}
	prog, err := ebpf.NewProgramWithOptions(spec, opts)
	if err != nil {
		return nil, fmt.Errorf("load the linked chain %s: %w", spec.Name, err)
	}
	return prog, nil
}

// chainMain is the generated main:
//
//	r6 = r1                         ; the context, callee-saved
//	r1 = r6; call part0; if w0 != -1 goto out
//	r1 = r6; call part1; if w0 != -1 goto out
//	...
//	r1 = r6; call partN             ; its verdict is the chain's
//	out: exit
//
// The comparison is 32-bit: a verdict is an int and TCX compares it as one.
// The main uses no stack, so (JIT-ed, where the stack is rounded to 16)
// it adds nothing to a part's stack depth.
func chainMain(sym string, entries []string) asm.Instructions {
	out := sym + "__out"
	insns := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1).WithSymbol(sym)}
	for i, e := range entries {
		insns = append(insns, asm.Mov.Reg(asm.R1, asm.R6), asm.Call.Label(e))
		if i < len(entries)-1 {
			insns = append(insns, asm.JNE.Imm32(asm.R0, Next, out))
		}
	}
	return append(insns, asm.Return().WithSymbol(out))
}

// ctxProto is the BTF prototype the main is described with: the first
// part's entry point's, int (struct __sk_buff *).
func ctxProto(ps *ebpf.ProgramSpec) (*btf.FuncProto, error) {
	fn := btf.FuncMetadata(&ps.Instructions[0])
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok || len(proto.Params) != 1 {
		return nil, fmt.Errorf("link: %s's BTF is not a function of one argument (the context): %v", ps.Name, fn.Type)
	}
	return proto, nil
}

// relink copies part i's instructions with its functions renamed and its
// map loads bound to the part's maps.
func relink(i int, p Part) (asm.Instructions, error) {
	pre := Prefix(i, p.Name)
	src := p.Program.Instructions
	syms := map[string]bool{}
	for _, ins := range src {
		if s := ins.Symbol(); s != "" {
			syms[s] = true
		}
	}
	out := make(asm.Instructions, len(src))
	copy(out, src) // Metadata is copy-on-write: the spec's stays as it is
	for j := range out {
		ins := &out[j]
		if s := ins.Symbol(); s != "" {
			*ins = ins.WithSymbol(pre + s)
		}
		if fn := btf.FuncMetadata(ins); fn != nil {
			renamed := *fn
			renamed.Name = pre + fn.Name
			*ins = btf.WithFuncMetadata(*ins, &renamed)
		}
		ref := ins.Reference()
		switch {
		case ins.IsLoadFromMap():
			if ref == "" {
				if ins.Map() != nil || int32(ins.Constant) > 0 {
					continue // bound already, by the caller
				}
				return nil, fmt.Errorf("link: part %d (%s): instruction %d loads a map it does not name", i, p.Name, j)
			}
			m := p.Maps[ref]
			if m == nil {
				return nil, fmt.Errorf("link: part %d (%s): map %s is not among the instance's maps", i, p.Name, ref)
			}
			if err := ins.AssociateMap(m); err != nil {
				return nil, fmt.Errorf("link: part %d (%s): map %s: %w", i, p.Name, ref, err)
			}
		case ref == "":
		case syms[ref]:
			*ins = ins.WithReference(pre + ref)
		case ins.IsFunctionReference():
			return nil, fmt.Errorf("link: part %d (%s): instruction %d calls %s, which %s does not contain", i, p.Name, j, ref, p.Program.Name)
		}
	}
	return out, nil
}
