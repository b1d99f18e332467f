package kernel

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/trace"
)

// Reported are the features GET /version reports, probed at start: TCX and
// what the shipped data planes use that older kernels lack.
var Reported = []string{
	ebpfmanager.FeatureTCX, ebpfmanager.FeatureBTF, ebpfmanager.FeatureBPFStats,
	"bpf_loop", "bpf_redirect_peer", "bpf_redirect_neigh", "bpf_fib_lookup", "bpf_check_mtu",
	"bpf_ktime_get_coarse_ns", "bpf_ringbuf_reserve", ebpfmanager.FeatureAdjustRoomDecap,
	"map_lpm_trie", "map_lru_hash", "map_percpu_hash", "map_percpu_array", "map_ringbuf", ebpfmanager.FeatureTracing,
}

// kernelBTF is where the kernel exposes its own BTF.
const kernelBTF = "/sys/kernel/btf/vmlinux"

// Prober answers which features the kernel offers. Each feature is probed
// once per process (per program type for a helper); a masked feature is
// answered "missing" without a probe. It is safe for concurrent use.
type Prober struct {
	mask  map[string]bool
	ask   func(probeKey) ebpfmanager.Probe // probeFeature; a counting stand-in in tests
	mu    sync.Mutex
	cache map[probeKey]ebpfmanager.Probe
}

type probeKey struct{ feature, progType string }

// NewProber returns a Prober that treats the features in mask as missing
// (a test hook: the daemon reads NETMANAGER_MASK_FEATURES). A name that is
// no feature is an error.
func NewProber(mask []string) (*Prober, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock limit: %w", err)
	}
	p := &Prober{mask: map[string]bool{}, ask: probeFeature, cache: map[probeKey]ebpfmanager.Probe{}}
	for _, f := range mask {
		if !KnownFeature(f) {
			return nil, fmt.Errorf("mask feature %q: no such feature (a helper like bpf_loop, a map type like map_lru_hash, or one of %s)",
				f, strings.Join(special, ", "))
		}
		p.mask[f] = true
	}
	return p, nil
}

// special are the features that are neither a helper nor a map type.
var special = []string{ebpfmanager.FeatureTCX, ebpfmanager.FeatureBTF, ebpfmanager.FeatureBPFStats, ebpfmanager.FeatureAdjustRoomDecap,
	ebpfmanager.FeatureTracing}

// KnownFeature says whether name is a feature a Prober can be asked about.
func KnownFeature(name string) bool {
	if slices.Contains(special, name) {
		return true
	}
	if _, ok := helpers[name]; ok {
		return true
	}
	_, ok := mapTypeByFeature(name)
	return ok
}

func mapTypeByFeature(name string) (ebpf.MapType, bool) {
	for t, n := range mapTypeNames {
		if "map_"+n == name {
			return t, true
		}
	}
	return 0, false
}

// Features probes the Reported features and the kernel's release.
func (p *Prober) Features() ebpfmanager.KernelFeatures {
	kf := ebpfmanager.KernelFeatures{Features: map[string]bool{}, Inconclusive: map[string]string{}}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		kf.Release = unix.ByteSliceToString(u.Release[:])
	}
	for _, f := range Reported {
		r := p.Have(f)
		kf.Features[f] = r.Have
		if r.Err != nil {
			kf.Inconclusive[f] = r.Err.Error()
		}
	}
	for f := range p.mask {
		kf.Masked = append(kf.Masked, f)
	}
	slices.Sort(kf.Masked)
	return kf
}

// Have probes one feature; a helper is probed for TC programs.
func (p *Prober) Have(feature string) ebpfmanager.Probe {
	progType := ""
	if _, ok := helpers[feature]; ok {
		progType = ebpf.SchedCLS.String()
	}
	return p.probe(probeKey{feature, progType})
}

// Probe answers each need.
func (p *Prober) Probe(needs []ebpfmanager.Need) []ebpfmanager.Probe {
	out := make([]ebpfmanager.Probe, len(needs))
	for i, n := range needs {
		out[i] = p.probe(probeKey{n.Feature, n.ProgramType})
	}
	return out
}

func (p *Prober) probe(k probeKey) ebpfmanager.Probe {
	if p.mask[k.feature] {
		return ebpfmanager.Probe{Have: false}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.cache[k]; ok {
		return r
	}
	r := p.ask(k)
	p.cache[k] = r
	return r
}

// probeFeature asks the kernel.
func probeFeature(k probeKey) ebpfmanager.Probe {
	switch k.feature {
	case ebpfmanager.FeatureTCX:
		return ebpfmanager.Probe{Have: HaveTCX()}
	case ebpfmanager.FeatureBTF:
		_, err := os.Stat(kernelBTF)
		if errors.Is(err, os.ErrNotExist) {
			return ebpfmanager.Probe{}
		}
		return answer(err)
	case ebpfmanager.FeatureBPFStats:
		c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err == nil {
			c.Close() // on only for this moment (the kernel counts users)
		}
		return answer(err)
	case ebpfmanager.FeatureAdjustRoomDecap:
		return probeAdjustRoom(1 | 1<<7) // BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_DECAP_L3_IPV4
	case ebpfmanager.FeatureTracing:
		return probeTracing(trace.Supported())
	}
	if fn, ok := helpers[k.feature]; ok {
		pt, ok := programType(k.progType)
		if !ok {
			return ebpfmanager.Probe{Err: fmt.Errorf("no probe for program type %q", k.progType)}
		}
		return answer(features.HaveProgramHelper(pt, fn))
	}
	if t, ok := mapTypeByFeature(k.feature); ok {
		return answer(features.HaveMapType(t))
	}
	return ebpfmanager.Probe{Err: fmt.Errorf("no probe for %s", k.feature)}
}

// answer reads a cilium/ebpf probe's error: nil is yes, ErrNotSupported no,
// anything else could not tell.
func answer(err error) ebpfmanager.Probe {
	switch {
	case err == nil:
		return ebpfmanager.Probe{Have: true}
	case errors.Is(err, ebpf.ErrNotSupported):
		return ebpfmanager.Probe{}
	default:
		return ebpfmanager.Probe{Err: err}
	}
}

// probeTracing reads the tracer's probe (trace.Supported, once per
// process): a refusal is a no, any other error could not tell.
func probeTracing(err error) ebpfmanager.Probe {
	switch {
	case err == nil:
		return ebpfmanager.Probe{Have: true}
	case errors.Is(err, trace.ErrUnsupported):
		return ebpfmanager.Probe{}
	default:
		return ebpfmanager.Probe{Err: err}
	}
}

// probeAdjustRoom runs bpf_skb_adjust_room with flags on a test packet, an
// outer IPv4+UDP header before an inner IPv4 packet, removing the outer
// headers (BPF_PROG_TEST_RUN): a kernel that knows the flags answers 0, one
// that does not -EINVAL.
func probeAdjustRoom(flags int32) ebpfmanager.Probe {
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Type: ebpf.SchedCLS, License: "MIT",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R2, -28), // the outer IPv4 and UDP headers
			asm.Mov.Imm(asm.R3, 1),   // BPF_ADJ_ROOM_MAC
			asm.Mov.Imm(asm.R4, flags),
			asm.FnSkbAdjustRoom.Call(),
			asm.Return(),
		},
	}, ebpf.ProgramOptions{LogDisabled: true})
	if err != nil {
		return answer(fmt.Errorf("load the bpf_skb_adjust_room probe: %w", err))
	}
	defer prog.Close()
	ret, err := prog.Run(&ebpf.RunOptions{Data: decapProbePacket()})
	switch {
	case err != nil:
		return ebpfmanager.Probe{Err: fmt.Errorf("run the bpf_skb_adjust_room probe: %w", err)}
	case ret == 0:
		return ebpfmanager.Probe{Have: true}
	case int32(ret) == -int32(unix.EINVAL):
		return ebpfmanager.Probe{}
	}
	return ebpfmanager.Probe{Err: fmt.Errorf("bpf_skb_adjust_room answered the probe with %d", int32(ret))}
}

// decapProbePacket is Ethernet, IPv4, UDP, then an inner IPv4 header and 8
// bytes of payload.
func decapProbePacket() []byte {
	pkt := make([]byte, 14+20+8+20+8)
	pkt[12], pkt[13] = 0x08, 0x00 // IPv4
	outer, inner := pkt[14:34], pkt[42:62]
	for _, ip := range [][]byte{outer, inner} {
		ip[0], ip[8], ip[9] = 0x45, 64, 17 // version and IHL, TTL, UDP
	}
	outer[2], outer[3] = 0, 56 // total length
	inner[2], inner[3] = 0, 28
	pkt[38], pkt[39] = 0, 36 // UDP length
	return pkt
}
