package trace

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/test/bpftest"
)

// dropper loads testdata/dropper.bpf.c: UDP dropped with reason 3 detail 7,
// TCP redirected, the rest next.
func dropper(t testing.TB) *ebpf.Program {
	t.Helper()
	return dropperAs(t, 0)
}

func start(t testing.TB, f Filter, p *ebpf.Program) *Session {
	t.Helper()
	s, err := Start(f)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.SetTargets([]Target{{Program: p, Func: "nm_ingress", Cookie: 42}}); err != nil {
		t.Fatalf("set targets: %v", err)
	}
	return s
}

func udpFrame(t testing.TB, dst string, dport uint16) []byte {
	return bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), bpftest.IPv4("10.30.0.2", dst, layers.IPProtocolUDP), bpftest.UDP(4000, dport), bpftest.Payload([]byte("hello")))
}

func tcpFrame(t testing.TB, dst string, dport uint16) []byte {
	return bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), bpftest.IPv4("10.30.0.2", dst, layers.IPProtocolTCP), bpftest.TCP(4001, dport))
}

// readNext is read's next record, false when none comes within 300 ms.
func readNext[T any](t *testing.T, read func(deadline time.Time) (T, error)) (T, bool) {
	t.Helper()
	v, err := read(time.Now().Add(300 * time.Millisecond))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		var zero T
		return zero, false
	}
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return v, true
}

// drain reads until nothing comes within 300 ms; it returns how many came.
func drain[T any](t *testing.T, read func(deadline time.Time) (T, error)) int {
	t.Helper()
	n := 0
	for {
		if _, ok := readNext(t, read); !ok {
			return n
		}
		n++
	}
}

// checkBucket checks, after 100 events were offered to a bucket of 5 at 1/s,
// that 5 came through (6 if a second passed) and the rest were counted lost.
func checkBucket[T any](t *testing.T, read func(deadline time.Time) (T, error), lost func() (uint64, error), took time.Duration) {
	t.Helper()
	n := drain(t, read)
	l, err := lost()
	if err != nil {
		t.Fatal(err)
	}
	// One more token each second the 100 took (slow under emulation), and
	// one for a second boundary passed.
	most := 6 + int(took/time.Second)
	if n < 5 || n > most || uint64(n)+l != 100 {
		t.Fatalf("%d events and %d lost of 100 in %v, want 5 to %d and the rest lost", n, l, took, most)
	}
}

func next(t *testing.T, s *Session) (Event, bool) {
	t.Helper()
	return readNext(t, s.Read)
}

// TestTraceDropWithReason: the fexit on a program run by BPF_PROG_TEST_RUN
// emits its verdict, the nm_drop reason and the packet as it entered.
func TestTraceDropWithReason(t *testing.T) {
	p := dropper(t)
	if refused(t, p) {
		return
	}
	s := start(t, Filter{}, p)
	if v, _ := bpftest.Run(t, p, udpFrame(t, "10.30.0.9", 53)); v != 2 {
		t.Fatalf("dropper verdict %d", v)
	}
	e, ok := next(t, s)
	if !ok {
		t.Fatal("no event for a traced drop")
	}
	want := Event{Cookie: 42, Verdict: 2, Reason: 3, Detail: 7, Proto: 17, Src: netip.MustParseAddr("10.30.0.2"), Dst: netip.MustParseAddr("10.30.0.9"), Sport: 4000, Dport: 53}
	got := e
	got.Time, got.CPU, got.Skb, got.Ifindex, got.Len = time.Time{}, 0, 0, 0, 0
	if got != want {
		t.Fatalf("event %+v, want %+v", got, want)
	}
	if e.Skb == 0 || e.Len == 0 || time.Since(e.Time) > time.Minute || time.Since(e.Time) < 0 {
		t.Fatalf("event skb %#x len %d time %v", e.Skb, e.Len, e.Time)
	}
}

// TestTraceVerdicts: next and redirect hops carry no reason.
func TestTraceVerdicts(t *testing.T) {
	p := dropper(t)
	if refused(t, p) {
		return
	}
	s := start(t, Filter{}, p)
	bpftest.Run(t, p, tcpFrame(t, "10.30.0.9", 80))
	bpftest.Run(t, p, bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), bpftest.IPv4("10.30.0.2", "10.30.0.9", layers.IPProtocolICMPv4)))
	for _, want := range []struct {
		v     int32
		proto uint8
	}{{7, 6}, {-1, 1}} {
		e, ok := next(t, s)
		if !ok || e.Verdict != want.v || e.Proto != want.proto || e.Reason != 0 {
			t.Fatalf("event %+v (%v), want verdict %d proto %d", e, ok, want.v, want.proto)
		}
	}
}

// TestTraceFilter: the kernel emits only what the filter selects.
func TestTraceFilter(t *testing.T) {
	p := dropper(t)
	if refused(t, p) {
		return
	}
	cases := []struct {
		name string
		f    Filter
		want []int // indexes of the frames below that match
	}{
		{"all", Filter{}, []int{0, 1, 2}},
		{"proto", Filter{Proto: 6}, []int{1}},
		{"host", Filter{Host: netip.MustParseAddr("10.30.0.8")}, []int{2}},
		{"port", Filter{Port: 53}, []int{0}},
		{"drops", Filter{DropsOnly: true}, []int{0, 2}},
		{"ifindex", Filter{Ifindexes: []int{999}}, nil},
		{"ipv6 host", Filter{Host: netip.MustParseAddr("fd00::1")}, nil},
	}
	frames := [][]byte{udpFrame(t, "10.30.0.9", 53), tcpFrame(t, "10.30.0.9", 80), udpFrame(t, "10.30.0.8", 54)}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := start(t, c.f, p)
			for _, f := range frames {
				bpftest.Run(t, p, f)
			}
			var got []int
			for {
				e, ok := next(t, s)
				if !ok {
					break
				}
				switch {
				case e.Dport == 53:
					got = append(got, 0)
				case e.Dport == 80:
					got = append(got, 1)
				default:
					got = append(got, 2)
				}
			}
			if len(got) != len(c.want) {
				t.Fatalf("matched %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("matched %v, want %v", got, c.want)
				}
			}
		})
	}
}

// TestTraceRateLimit: a bucket of 5 events at 1/s lets 5 of 100 drops
// through and counts the other 95 lost.
func TestTraceRateLimit(t *testing.T) {
	p := dropper(t)
	if refused(t, p) {
		return
	}
	s := start(t, Filter{DropsOnly: true, Rate: 1, Burst: 5}, p)
	f := udpFrame(t, "10.30.0.9", 53)
	start := time.Now()
	var err error
	bpftest.OnOneCPU(t, func() { _, err = p.Run(&ebpf.RunOptions{Data: f, Repeat: 100}) })
	if err != nil {
		t.Fatal(err)
	}
	checkBucket(t, s.Read, s.Lost, time.Since(start))
}
