package kernel

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/trace"
	"github.com/oakestra/netmanager/test/bpftest"
)

// This machine's kernel (6.18) has every reported feature, and the probes
// say so conclusively.
func TestProbesOnThisKernel(t *testing.T) {
	bpftest.RequireRoot(t)
	p, err := NewProber(nil)
	if err != nil {
		t.Fatal(err)
	}
	kf := p.Features()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	if want := unix.ByteSliceToString(u.Release[:]); kf.Release != want {
		t.Errorf("release %q, want %q", kf.Release, want)
	}
	for _, f := range []string{"tcx", "bpf_loop", "bpf_redirect_peer", "bpf_redirect_neigh", "btf", "bpf_stats", "adjust_room_decap"} {
		if !kf.Features[f] {
			t.Errorf("the probes say this kernel lacks %s (inconclusive: %q)", f, kf.Inconclusive[f])
		}
	}
	for _, f := range Reported {
		if _, ok := kf.Features[f]; !ok {
			t.Errorf("feature %s not reported", f)
		}
		if f == ebpfmanager.FeatureTracing {
			// The one this sandbox's 6.18.44-fc refuses (EPERM); Debian's
			// kernels in the matrix have it. The report follows the probe.
			if want := trace.Supported() == nil; kf.Features[f] != want {
				t.Errorf("tracing reported %v, the tracer's probe says %v (%v)", kf.Features[f], want, trace.Supported())
			}
			continue
		}
		if !kf.Features[f] {
			t.Errorf("this kernel (6.18) has %s; the probe says not (inconclusive: %q)", f, kf.Inconclusive[f])
		}
	}
	if len(kf.Inconclusive) != 0 || len(kf.Masked) != 0 {
		t.Errorf("inconclusive %v, masked %v: want none", kf.Inconclusive, kf.Masked)
	}
}

// The probes also say no: to a helper TC programs may not call, and to a
// bpf_skb_adjust_room flag no kernel knows.
func TestProbesSayNo(t *testing.T) {
	bpftest.RequireRoot(t)
	p, err := NewProber(nil)
	if err != nil {
		t.Fatal(err)
	}
	got := p.Probe([]ebpfmanager.Need{
		{Feature: helperFeature(asm.FnOverrideReturn), ProgramType: "SchedCLS"}, // kprobes only
		{Feature: "bpf_loop", ProgramType: "SchedCLS"},
	})
	if got[0].Have || got[0].Err != nil {
		t.Errorf("bpf_override_return in TC programs: %+v, want a conclusive no", got[0])
	}
	if !got[1].Have {
		t.Errorf("bpf_loop in TC programs: %+v, want yes", got[1])
	}
	if r := probeAdjustRoom(1 << 30); r.Have || r.Err != nil {
		t.Errorf("bpf_skb_adjust_room with an unknown flag: %+v, want a conclusive no", r)
	}
}

// A masked feature is reported missing, and a masked TCX makes auto legacy.
func TestMaskedFeatures(t *testing.T) {
	bpftest.RequireRoot(t)
	p, err := NewProber([]string{"bpf_loop", "tcx"})
	if err != nil {
		t.Fatal(err)
	}
	kf := p.Features()
	if kf.Features["bpf_loop"] || kf.Features["tcx"] || !kf.Features["bpf_redirect_peer"] {
		t.Errorf("features %v: want bpf_loop and tcx off, the rest on", kf.Features)
	}
	if !slices.Equal(kf.Masked, []string{"bpf_loop", "tcx"}) {
		t.Errorf("masked %v", kf.Masked)
	}
	k, err := NewWithProber("auto", p)
	if err != nil {
		t.Fatal(err)
	}
	if k.Mode() != ebpfmanager.ModeLegacy {
		t.Errorf("auto with tcx masked: mode %s, want legacy", k.Mode())
	}
	if _, err := NewWithProber("tcx", p); err == nil {
		t.Error("tc mode tcx with tcx masked: no error")
	}
	if _, err := NewProber([]string{"bpf_nope"}); err == nil {
		t.Error("masking an unknown feature: no error")
	}
}

// Each feature is probed once per process and program type, however often
// and from however many goroutines it is asked; a masked one never.
func TestProbeCache(t *testing.T) {
	var mu sync.Mutex
	asked := map[probeKey]int{}
	p := &Prober{mask: map[string]bool{"bpf_loop": true}, cache: map[probeKey]ebpfmanager.Probe{}, ask: func(k probeKey) ebpfmanager.Probe {
		mu.Lock()
		defer mu.Unlock()
		asked[k]++
		if k.feature == "map_arena" {
			return ebpfmanager.Probe{Err: errors.New("cannot tell")}
		}
		return ebpfmanager.Probe{Have: k.feature != "bpf_check_mtu"}
	}}
	needs := []ebpfmanager.Need{
		{Feature: "bpf_loop", ProgramType: "SchedCLS"},
		{Feature: "bpf_check_mtu", ProgramType: "SchedCLS"},
		{Feature: "bpf_check_mtu", ProgramType: "XDP"},
		{Feature: "map_arena"},
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := p.Probe(needs)
			if got[0].Have || got[1].Have || got[2].Have || got[3].Err == nil {
				t.Errorf("answers %+v", got)
			}
		}()
	}
	wg.Wait()
	want := map[probeKey]int{{"bpf_check_mtu", "SchedCLS"}: 1, {"bpf_check_mtu", "XDP"}: 1, {"map_arena", ""}: 1}
	if len(asked) != len(want) {
		t.Errorf("probes asked %v, want %v", asked, want)
	}
	for k, n := range want {
		if asked[k] != n {
			t.Errorf("probe %v asked %d times, want %d", k, asked[k], n)
		}
	}
}

// TestProbeTracing: the tracer's probe read as a feature: nil yes, its
// refusal a conclusive no, anything else could not tell.
func TestProbeTracing(t *testing.T) {
	refusal := &trace.UnsupportedError{Kernel: errors.New("load program: operation not permitted")}
	for _, c := range []struct {
		err        error
		have, errd bool
	}{{nil, true, false}, {refusal, false, false}, {errors.New("probe tracing: load the target program: x"), false, true}} {
		r := probeTracing(c.err)
		if r.Have != c.have || (r.Err != nil) != c.errd {
			t.Errorf("probeTracing(%v) = %+v, want have %v, inconclusive %v", c.err, r, c.have, c.errd)
		}
	}
	if !KnownFeature("tracing") {
		t.Error("tracing is no known feature (NETMANAGER_MASK_FEATURES could not mask it)")
	}
}
