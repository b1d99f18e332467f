package kernel

import (
	"slices"

	"github.com/cilium/ebpf/asm"
)

// adjRoomDecapL3 are BPF_F_ADJ_ROOM_DECAP_L3_IPV4 and _IPV6 (Linux 6.3).
const adjRoomDecapL3 = 1<<7 | 1<<8

// maxValues is how many constants a register may hold before it counts as
// unknown.
const maxValues = 16

// absVal is what the analysis knows of a register: one of a few constants,
// or unknown (top). The zero value is "not reached yet".
type absVal struct {
	top  bool
	vals []uint64 // sorted, unique
}

var top = absVal{top: true}

func constant(v uint64) absVal { return absVal{vals: []uint64{v}} }

// join merges o into v and reports whether v grew.
func (v *absVal) join(o absVal) bool {
	switch {
	case v.top:
		return false
	case o.top:
		*v = top
		return true
	}
	n := len(v.vals)
	merged := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(v.vals), o.vals...))))
	if len(merged) > maxValues {
		*v = top
		return true
	}
	v.vals = merged
	return len(merged) != n
}

type regs [asm.R10 + 1]absVal

func (r *regs) join(o *regs) bool {
	grew := false
	for i := range r {
		grew = r[i].join(o[i]) || grew
	}
	return grew
}

// adjustRoomFlags returns the flags that some call to bpf_skb_adjust_room in
// insns (one program with its subprograms, as cilium/ebpf links them) may
// pass, where they are constants: a forward constant propagation over the
// control flow, which follows moves, immediate loads and ALU operations on
// constants; anything read from memory or returned by a call is unknown,
// and a call whose flags are unknown contributes nothing.
func adjustRoomFlags(insns asm.Instructions) []uint64 {
	targets, labels := jumpTargets(insns)
	in := make([]*regs, len(insns))
	var work []int
	for i, ins := range insns {
		if i == 0 || (ins.Symbol() != "" && !labels[i]) { // a function's entry: its arguments are unknown
			in[i] = &regs{}
			for r := range in[i] {
				in[i][r] = top
			}
			work = append(work, i)
		}
	}
	for len(work) > 0 {
		i := work[len(work)-1]
		work = work[:len(work)-1]
		out := *in[i]
		step(&out, &insns[i])
		for _, next := range successors(insns, targets, labels, i) {
			if in[next] == nil {
				st := out
				in[next] = &st
				work = append(work, next)
			} else if in[next].join(&out) {
				work = append(work, next)
			}
		}
	}
	var flags []uint64
	for i := range insns {
		ins := &insns[i]
		if in[i] != nil && ins.IsBuiltinCall() && asm.BuiltinFunc(ins.Constant) == asm.FnSkbAdjustRoom && !in[i][asm.R4].top {
			flags = append(flags, in[i][asm.R4].vals...)
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(flags)))
}

// jumpTargets maps each jump's index to the index it lands on: by its label
// where it has one (hand-built instructions; labels are those symbols), else
// by its offset in raw instructions (an object file's).
func jumpTargets(insns asm.Instructions) (targets map[int]int, labels map[int]bool) {
	raw := make([]int, len(insns)+1) // raw offset of each instruction
	byRaw := map[int]int{}
	symbols := map[string]int{}
	for i, ins := range insns {
		byRaw[raw[i]] = i
		raw[i+1] = raw[i] + int(ins.Size()/asm.InstructionSize)
		if s := ins.Symbol(); s != "" {
			symbols[s] = i
		}
	}
	targets, labels = map[int]int{}, map[int]bool{}
	for i, ins := range insns {
		if !isJump(ins) {
			continue
		}
		if ref := ins.Reference(); ref != "" {
			if t, ok := symbols[ref]; ok {
				targets[i], labels[t] = t, true
			}
			continue
		}
		off := int(ins.Offset)
		if ins.OpCode.Class() == asm.Jump32Class && ins.OpCode.JumpOp() == asm.Ja {
			off = int(ins.Constant) // gotol
		}
		if t, ok := byRaw[raw[i]+1+off]; ok {
			targets[i] = t
		}
	}
	return targets, labels
}

// isJump says whether ins is a jump within its function (not a call or exit).
func isJump(ins asm.Instruction) bool {
	op := ins.OpCode.JumpOp()
	return ins.OpCode.Class().IsJump() && op != asm.Call && op != asm.Exit
}

// successors are where control goes after instruction i; a function's
// entry is reached only by calls.
func successors(insns asm.Instructions, targets map[int]int, labels map[int]bool, i int) []int {
	ins := insns[i]
	var out []int
	if t, ok := targets[i]; ok {
		out = append(out, t)
	}
	exit := ins.OpCode.Class().IsJump() && ins.OpCode.JumpOp() == asm.Exit
	always := isJump(ins) && ins.OpCode.JumpOp() == asm.Ja
	if !exit && !always && i+1 < len(insns) && (insns[i+1].Symbol() == "" || labels[i+1]) {
		out = append(out, i+1)
	}
	return out
}

// step applies one instruction to what is known of the registers.
func step(r *regs, ins *asm.Instruction) {
	cls := ins.OpCode.Class()
	switch {
	case cls.IsALU():
		r[ins.Dst] = alu(r, ins)
	case ins.OpCode.IsDWordLoad():
		if ins.IsConstantLoad(asm.DWord) {
			r[ins.Dst] = constant(uint64(ins.Constant))
		} else {
			r[ins.Dst] = top // a map, a map value or a function's address
		}
	case cls == asm.LdXClass:
		r[ins.Dst] = top
	case cls == asm.LdClass: // legacy packet loads: R0, and they clobber R1-R5
		for reg := asm.R0; reg <= asm.R5; reg++ {
			r[reg] = top
		}
	case cls == asm.StXClass && ins.OpCode.Mode() == asm.AtomicMode: // fetch and cmpxchg write registers
		r[ins.Src], r[asm.R0] = top, top
	case cls.IsJump() && ins.OpCode.JumpOp() == asm.Call:
		for reg := asm.R0; reg <= asm.R5; reg++ {
			r[reg] = top
		}
	}
}

// alu evaluates an ALU instruction over constant operands.
func alu(r *regs, ins *asm.Instruction) absVal {
	op := ins.OpCode.ALUOp()
	is32 := ins.OpCode.Class() == asm.ALUClass
	src := constant(uint64(ins.Constant))
	if ins.OpCode.Source() == asm.RegSource {
		src = r[ins.Src]
	}
	dst := r[ins.Dst]
	if op == asm.Mov {
		dst = constant(0) // the old value does not matter
	}
	if src.top || dst.top || op == asm.Swap {
		return top
	}
	var out absVal
	for _, d := range dst.vals {
		for _, s := range src.vals {
			v, ok := evalALU(op, d, s, is32)
			if !ok {
				return top
			}
			out.join(constant(v))
		}
	}
	return out
}

// evalALU computes one ALU operation; ok is false for one it does not model.
func evalALU(op asm.ALUOp, d, s uint64, is32 bool) (uint64, bool) {
	shift := s & 63
	if is32 {
		d, s, shift = uint64(uint32(d)), uint64(uint32(s)), s&31
	}
	var v uint64
	switch op {
	case asm.Mov:
		v = s
	case asm.Add:
		v = d + s
	case asm.Sub:
		v = d - s
	case asm.Mul:
		v = d * s
	case asm.Or:
		v = d | s
	case asm.And:
		v = d & s
	case asm.Xor:
		v = d ^ s
	case asm.LSh:
		v = d << shift
	case asm.RSh:
		v = d >> shift
	case asm.Neg:
		v = -d
	default: // division, modulo, arithmetic and sign-extending moves
		return 0, false
	}
	if is32 {
		v = uint64(uint32(v))
	}
	return v, true
}
