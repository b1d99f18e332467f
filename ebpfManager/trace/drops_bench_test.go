package trace

import (
	"testing"

	"github.com/cilium/ebpf"

	"github.com/oakestra/netmanager/test/bpftest"
)

// BenchmarkDropMonitor: one BPF_PROG_TEST_RUN per iteration (a test run
// frees its packet once, with kfree_skb, whatever its repeat count, so a
// drop's monitor run is paid once per iteration): a no-op program (the
// floor: the syscall and the skb), the dropper without the monitor, with the
// monitor at the default 1000/s over the node (nearly every drop refused by
// the bucket: the flood's path), and with the monitor unlimited (every drop
// reported through the ring buffer, nothing reading it: the ring fills and
// the rest is counted). The monitor's cost per dropped packet is the
// difference to "drop".
func BenchmarkDropMonitor(b *testing.B) {
	drop := dropperAs(b, 1)
	noop := bpftest.Load(b, bpftest.Compile(b, "testdata/noop.bpf.c")).Programs["nm_ingress"]
	frame := udpFrame(b, "10.30.0.9", 53)
	run := func(b *testing.B, p *ebpf.Program) {
		opts := &ebpf.RunOptions{Data: frame}
		b.ResetTimer()
		for range b.N {
			if _, err := p.Run(opts); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("noop", func(b *testing.B) { run(b, noop) })
	b.Run("drop", func(b *testing.B) { run(b, drop) })
	b.Run("drop+monitor", func(b *testing.B) {
		startDrops(b, DropFilter{Rate: 500, Burst: 500})
		run(b, drop)
	})
	b.Run("drop+monitor-unlimited", func(b *testing.B) {
		startDrops(b, DropFilter{})
		run(b, drop)
	})
}
