package linked

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/test/bpftest"
)

// __sk_buff offsets the hand-written parts use.
const (
	cbOff     = 48 // cb[0]
	cbOrder   = cbOff + 0*4
	cbInst    = cbOff + 2*4 // bpf/reasons.h's NM_INSTANCE_CB
	instVarSz = 4
)

// asmSpec is a hand-written module entry point, named like a real one, with
// a label and a static subprogram whose names every asmSpec shares (so
// linking must rename them). It
//   - appends digit to cb[0] (cb[0] = cb[0]*10 + digit): the run order,
//   - copies its instance id from its own read-only global-data map
//     (".rodata", the way nm_instance is read) into cb[2],
//   - adds 1 to its own array map "counter",
//   - returns verdict, from the subprogram "verdict"; as a 32-bit move when
//     zext (so a zero-extended 0xffffffff must still count as next).
func asmSpec(digit int32, verdict int32, zext bool) *ebpf.ProgramSpec {
	ret := asm.Mov.Imm(asm.R0, verdict)
	if zext {
		ret = asm.Mov.Imm32(asm.R0, verdict)
	}
	return &ebpf.ProgramSpec{
		Name: "nm_ingress", Type: ebpf.SchedCLS, License: "Dual MIT/GPL",
		Instructions: asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1).WithSymbol("nm_ingress"),
			asm.LoadMem(asm.R2, asm.R6, cbOrder, asm.Word),
			asm.Mul.Imm(asm.R2, 10),
			asm.Add.Imm(asm.R2, digit),
			asm.StoreMem(asm.R6, cbOrder, asm.R2, asm.Word),
			asm.LoadMapValue(asm.R2, 0, 0).WithReference(".rodata"),
			asm.LoadMem(asm.R2, asm.R2, 0, asm.Word),
			asm.StoreMem(asm.R6, cbInst, asm.R2, asm.Word),
			asm.StoreImm(asm.RFP, -4, 0, asm.Word),
			asm.LoadMapPtr(asm.R1, 0).WithReference("counter"),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "skip"),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
			asm.Call.Label("verdict").WithSymbol("skip"),
			asm.Return(),
			ret.WithSymbol("verdict"),
			asm.Return(),
		},
	}
}

// asmInstance creates the maps of one hand-written instance: its counter
// and its frozen, program-read-only .rodata holding id.
func asmInstance(t testing.TB, id uint32) map[string]*ebpf.Map {
	t.Helper()
	counter, err := ebpf.NewMap(&ebpf.MapSpec{Name: "counter", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { counter.Close() })
	ro, err := ebpf.NewMap(&ebpf.MapSpec{Name: ".rodata", Type: ebpf.Array, KeySize: 4, ValueSize: instVarSz, MaxEntries: 1,
		Flags: 1 << 7 /* BPF_F_RDONLY_PROG */, Contents: []ebpf.MapKV{{Key: uint32(0), Value: id}}}) // frozen: named .rodata
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	return map[string]*ebpf.Map{"counter": counter, ".rodata": ro}
}

func counterOf(t testing.TB, maps map[string]*ebpf.Map) uint64 {
	t.Helper()
	var n uint64
	if err := maps["counter"].Lookup(uint32(0), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// instance is a real module's object loaded as one instance, the way the
// eBPF Manager's loader does (nm_instance set to id).
type instance struct {
	name string
	id   uint32
	spec *ebpf.CollectionSpec
	coll *ebpf.Collection
}

func loadInstance(t testing.TB, dir, name string, id uint32) *instance {
	t.Helper()
	spec, err := ebpf.LoadCollectionSpec(bpftest.ModuleObject(t, dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if v := spec.Variables["nm_instance"]; v != nil {
		if err := v.Set(id); err != nil {
			t.Fatal(err)
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Fatalf("load %s: %+v", name, ve)
		}
		t.Fatalf("load %s: %v", name, err)
	}
	t.Cleanup(coll.Close)
	return &instance{name: name, id: id, spec: spec, coll: coll}
}

func (in *instance) part(t testing.TB, prog string) Part {
	t.Helper()
	p, ok := FromCollection(in.name+"_"+itoa(in.id), in.spec, in.coll, prog)
	if !ok {
		t.Fatalf("%s has no %s", in.name, prog)
	}
	return p
}

func itoa(n uint32) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// verified is the verifier's processed instruction count of a program.
func verified(t testing.TB, p *ebpf.Program) uint32 {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	n, ok := info.VerifiedInstructions()
	if !ok {
		t.Fatal("the kernel does not report verified instructions")
	}
	return n
}

// setFirewallDeny sets a firewall instance's default policy (struct
// fw_state's default_deny, offset 12; modules/firewall/firewall.h).
func setFirewallDeny(t testing.TB, in *instance, deny bool) {
	t.Helper()
	m := in.coll.Maps["state"]
	v := make([]byte, m.ValueSize())
	if err := m.Lookup(uint32(0), &v); err != nil {
		t.Fatal(err)
	}
	var d uint32
	if deny {
		d = 1
	}
	binary.NativeEndian.PutUint32(v[12:], d)
	if err := m.Update(uint32(0), v, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
}

// setDropmarkTOS configures dropmark (test/modules/dropmark) to drop IPv4
// packets with this ToS byte.
func setDropmarkTOS(t testing.TB, in *instance, tos uint8) {
	t.Helper()
	if err := in.coll.Maps["config"].Update(uint32(0), [4]byte{tos}, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
}

// pcPackets is packetcounter's packet count for (ifindex, hook), summed over CPUs.
func pcPackets(t testing.TB, in *instance, ifindex, hook uint32) uint64 {
	t.Helper()
	type value struct{ Packets, Bytes uint64 }
	var per []value
	err := in.coll.Maps["counts"].Lookup([2]uint32{ifindex, hook}, &per)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, v := range per {
		n += v.Packets
	}
	return n
}

func droppedOf(t testing.TB, in *instance) uint64 {
	t.Helper()
	var per []uint64
	if err := in.coll.Maps["dropped"].Lookup(uint32(0), &per); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n
}

// udpFrame is an IPv4 UDP packet between addresses no module knows, with ToS tos.
func udpFrame(t testing.TB, tos uint8) []byte {
	t.Helper()
	ip := bpftest.IPv4("192.0.2.1", "198.51.100.1", layers.IPProtocolUDP)
	ip.TOS = tos
	return bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), ip, bpftest.UDP(40000, 5353), bpftest.Payload(make([]byte, 18)))
}

// noopSpec is an entry point that only says next.
func noopSpec() *ebpf.ProgramSpec {
	return &ebpf.ProgramSpec{Name: "nm_ingress", Type: ebpf.SchedCLS, License: "Dual MIT/GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, Next).WithSymbol("nm_ingress"), asm.Return()}}
}
