package trace

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/test/bpftest"
)

func progID(t testing.TB, p *ebpf.Program) uint32 {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return uint32(id)
}

// TestTracingOffLeavesNothing: a trace's fentry and fexit are the only
// tracing links on the program while it runs, and none is left after Close
// (nothing then runs around the program: 0 ns by construction).
func TestTracingOffLeavesNothing(t *testing.T) {
	p := dropper(t)
	if refused(t, p) {
		return
	}
	id := progID(t, p)
	s, err := Start(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTargets([]Target{{Program: p, Func: "nm_ingress", Cookie: 1}}); err != nil {
		t.Fatal(err)
	}
	if n, err := LinksTo(id); err != nil || n != 2 {
		t.Fatalf("while tracing: %d tracing links to program %d (%v), want 2", n, id, err)
	}
	if err := s.SetTargets(nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := LinksTo(id); n != 0 || s.Attached() != 0 {
		t.Fatalf("after SetTargets(nil): %d links, %d attached", n, s.Attached())
	}
	if err := s.SetTargets([]Target{{Program: p, Func: "nm_ingress", Cookie: 2}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if n, err := LinksTo(id); err != nil || n != 0 {
		t.Fatalf("after Close: %d tracing links to program %d (%v), want none", n, id, err)
	}
	bpftest.Run(t, p, udpFrame(t, "10.30.0.9", 53)) // the program runs on, untraced
}

// BenchmarkHop is the cost of tracing one hop: the packet counter's
// nm_ingress run by BPF_PROG_TEST_RUN untraced, traced with a filter that
// does not match (fentry parses and filters; fexit returns), and traced with
// every packet emitted into the ring buffer (drained meanwhile); beside a
// program that only returns, untraced.
//
//	go test ./ebpfManager/trace -run '^$' -bench Hop
func BenchmarkHop(b *testing.B) {
	bpftest.RequireRoot(b)
	coll := bpftest.Load(b, bpftest.ModuleObject(b, "modules", "packetcounter"))
	counter := coll.Programs["nm_ingress"]
	if refused(b, counter) {
		return
	}
	noop := bpftest.Load(b, bpftest.Compile(b, "testdata/noop.bpf.c")).Programs["nm_ingress"]
	frame := bpftest.Serialize(b, bpftest.Eth(layers.EthernetTypeIPv4), bpftest.IPv4("10.30.0.2", "10.30.0.9", layers.IPProtocolTCP), bpftest.TCP(4001, 80))
	run := func(b *testing.B, p *ebpf.Program) {
		_, d, err := p.Benchmark(frame, b.N, b.ResetTimer)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(d.Nanoseconds()), "ns/packet")
	}
	b.Run("noop", func(b *testing.B) { run(b, noop) })
	b.Run("off", func(b *testing.B) { run(b, counter) })
	for _, c := range []struct {
		name string
		f    Filter
	}{{"nomatch", Filter{Port: 9}}, {"match", Filter{}}} {
		b.Run(c.name, func(b *testing.B) {
			s, err := Start(c.f)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.SetTargets([]Target{{Program: counter, Func: "nm_ingress", Cookie: 1}}); err != nil {
				b.Fatal(err)
			}
			go func() {
				for {
					if _, err := s.Read(time.Time{}); err == ErrClosed {
						return
					}
				}
			}()
			run(b, counter)
		})
	}
}
