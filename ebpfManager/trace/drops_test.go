package trace

import (
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/test/bpftest"
)

// dropperAs loads testdata/dropper.bpf.c with nm_instance set to id, as the
// eBPF Manager's loader does.
func dropperAs(t testing.TB, id uint32) *ebpf.Program {
	t.Helper()
	bpftest.RequireRoot(t)
	spec, err := ebpf.LoadCollectionSpec(bpftest.Compile(t, "testdata/dropper.bpf.c"))
	if err != nil {
		t.Fatal(err)
	}
	v := spec.Variables["nm_instance"]
	if v == nil {
		t.Fatal("the dropper has no nm_instance (bpf/reasons.h)")
	}
	if err := v.Set(id); err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(coll.Close)
	return coll.Programs["nm_ingress"]
}

func startDrops(t testing.TB, f DropFilter) *DropSession {
	t.Helper()
	s, err := StartDrops(f)
	if err != nil {
		t.Fatalf("start the drop monitor: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func nextDrop(t *testing.T, s *DropSession) (Drop, bool) {
	t.Helper()
	return readNext(t, s.Read)
}

// TestDropMonitor: a drop by nm_drop in a program run by BPF_PROG_TEST_RUN
// (which frees the packet with kfree_skb) is one event with the instance,
// reason and detail; a packet that goes on is none.
func TestDropMonitor(t *testing.T) {
	p := dropperAs(t, 4242)
	s := startDrops(t, DropFilter{Ours: true, Instances: []uint32{4242}})
	if v, _ := bpftest.Run(t, p, tcpFrame(t, "10.30.0.9", 80)); v != 7 {
		t.Fatalf("dropper verdict %d on TCP", v)
	}
	bpftest.Run(t, p, bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), bpftest.IPv4("10.30.0.2", "10.30.0.9", layers.IPProtocolICMPv4)))
	if d, ok := nextDrop(t, s); ok {
		t.Fatalf("a drop reported for packets that went on: %+v", d)
	}
	if v, _ := bpftest.Run(t, p, udpFrame(t, "10.30.0.9", 53)); v != 2 {
		t.Fatalf("dropper verdict %d on UDP", v)
	}
	d, ok := nextDrop(t, s)
	if !ok {
		t.Fatal("no drop reported for nm_drop")
	}
	got := d
	got.Time, got.CPU, got.Len, got.Ifindex = time.Time{}, 0, 0, 0 // a test run's packet is on lo
	want := Drop{Instance: 4242, Reason: 3, Detail: 7, Hook: HookUnknown, Proto: 17,
		Src: netip.MustParseAddr("10.30.0.2"), Dst: netip.MustParseAddr("10.30.0.9"), Sport: 4000, Dport: 53}
	if got != want {
		t.Fatalf("drop %+v, want %+v", got, want)
	}
	if d.Len == 0 || time.Since(d.Time) > time.Minute || time.Since(d.Time) < 0 {
		t.Fatalf("drop len %d time %v", d.Len, d.Time)
	}
	if d, ok := nextDrop(t, s); ok {
		t.Fatalf("a second drop reported: %+v", d)
	}
}

// TestDropMonitorFilter: the kernel reports only what the filter selects,
// and only our instances' drops: another's take none of the rate limit.
func TestDropMonitorFilter(t *testing.T) {
	const ours, another = 5101, 5102
	p := dropperAs(t, ours)
	cases := []struct {
		name string
		f    DropFilter
		want int // of the two drops below (dport 53 to .9, dport 54 to .8)
	}{
		{"all", DropFilter{}, 2},
		{"proto", DropFilter{Proto: 6}, 0},
		{"host", DropFilter{Host: netip.MustParseAddr("10.30.0.8")}, 1},
		{"port", DropFilter{Port: 53}, 1},
		{"only an ifindex", DropFilter{Ifaces: map[int]uint8{999: 0}, Only: true}, 0},
		{"hook unknown allowed", DropFilter{HooksFiltered: true, OtherHooks: 1 << HookUnknown}, 2},
		{"ingress only", DropFilter{HooksFiltered: true, OtherHooks: 1 << HookIngress}, 0},
		{"ipv6 host", DropFilter{Host: netip.MustParseAddr("fd00::1")}, 0},
		{"another instance's", DropFilter{Instances: []uint32{another}, Rate: 1, Burst: 1}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := c.f
			f.Ours = true
			if f.Instances == nil {
				f.Instances = []uint32{ours}
			}
			s := startDrops(t, f)
			bpftest.Run(t, p, udpFrame(t, "10.30.0.9", 53))
			bpftest.Run(t, p, udpFrame(t, "10.30.0.8", 54))
			if n := drain(t, s.Read); n != c.want {
				t.Fatalf("%d drops reported, want %d", n, c.want)
			}
			if lost, err := s.Lost(); err != nil || (f.Instances[0] == another && lost != 0) {
				t.Fatalf("another instance's drops took %d of the rate limit (%v)", lost, err)
			}
		})
	}
}

// TestDropMonitorRateLimit: a bucket of 5 events at 1/s lets 5 of 100 drops
// through and counts the other 95 (suppressed).
func TestDropMonitorRateLimit(t *testing.T) {
	p := dropperAs(t, 5103)
	s := startDrops(t, DropFilter{Rate: 1, Burst: 5, Ours: true, Instances: []uint32{5103}})
	f := udpFrame(t, "10.30.0.9", 53)
	start := time.Now()
	var err error
	bpftest.OnOneCPU(t, func() {
		for range 100 { // one test run frees its packet once, whatever its Repeat
			if _, err = p.Run(&ebpf.RunOptions{Data: f}); err != nil {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	checkBucket(t, s.Read, s.Lost, time.Since(start))
}
