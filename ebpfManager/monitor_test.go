package ebpfmanager

import (
	"net/netip"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/oakestra/netmanager/ebpfManager/trace"
)

func (f *fakeTracer) StartDrops(flt trace.DropFilter) (DropSession, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropFilter = flt
	return f.drops, nil
}

// fakeDropSession replays queued drops.
type fakeDropSession struct {
	fakeRing
	drops chan trace.Drop
	late  []trace.Drop // returned only to a Read whose deadline has passed (a drain)
	owned []uint32     // instances Own added
}

func (s *fakeDropSession) Own(instances []uint32, ifaces map[int]uint8) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.owned = append(s.owned, instances...)
	return nil
}

func newFakeDropSession(ds ...trace.Drop) *fakeDropSession {
	s := &fakeDropSession{drops: make(chan trace.Drop, 100)}
	for _, d := range ds {
		s.drops <- d
	}
	return s
}

func (s *fakeDropSession) Read(deadline time.Time) (trace.Drop, error) {
	s.mu.Lock()
	if len(s.late) > 0 && !time.Now().Before(deadline) {
		d := s.late[0]
		s.late = s.late[1:]
		s.mu.Unlock()
		return d, nil
	}
	s.mu.Unlock()
	select {
	case d := <-s.drops:
		return d, nil
	default:
	}
	select {
	case d := <-s.drops:
		return d, nil
	case <-time.After(time.Until(deadline)):
		return trace.Drop{}, os.ErrDeadlineExceeded
	}
}

func drop(instance, reason, detail uint32, hook trace.Hook, ifindex int) trace.Drop {
	return trace.Drop{Instance: instance, Reason: reason, Detail: detail, Hook: hook, Ifindex: ifindex, Proto: 17, Len: 60,
		Src: netip.MustParseAddr("10.18.0.5"), Dst: netip.MustParseAddr("10.30.0.1"), Sport: 1000, Dport: 53}
}

// TestDropMonitorPaths: a drop names the instance nm_drop recorded (its
// module, priority, reason), the interface, service and direction (from the
// kernel's drop reason); a TC drop without nm_drop's mark is an
// unattributed one; suppressed drops come as a notice.
func TestDropMonitorPaths(t *testing.T) {
	h, ft := traceHarness(t, newFakeSession())
	ft.drops = newFakeDropSession(drop(2, 3, 7, trace.HookIngress, 5), drop(0, 0, 0, trace.HookEgress, 5), drop(2, 3, 7, trace.HookUnknown, 5))
	ft.drops.lost = 9
	paths, err := collect(t, h, TraceOptions{Drops: true, Rate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 4 {
		t.Fatalf("paths %+v, want 3 drops and a notice", paths)
	}
	a, u, x, n := paths[0], paths[1], paths[2], paths[3]
	if a.Interface != "oak5" || a.Service != "a/0" || a.Hook != "ingress" || a.Direction != "out" || a.Proto != "udp" ||
		a.Src != "10.18.0.5" || a.Dport != 53 || len(a.Hops) != 1 {
		t.Fatalf("drop %+v", a)
	}
	if want := (Hop{Instance: "2", Module: "dropper", Priority: 20, Verdict: "drop", Reason: "reason 3", Detail: 7}); a.Hops[0] != want {
		t.Fatalf("hop %+v, want %+v", a.Hops[0], want)
	}
	if want := (Hop{Verdict: "drop", Reason: "unspecified"}); u.Hops[0] != want || u.Hook != "egress" || u.Direction != "in" {
		t.Fatalf("unattributed drop %+v, want hop %+v on egress (in)", u, want)
	}
	if x.Hook != "" || x.Direction != "unknown" || x.Hops[0].Module != "dropper" {
		t.Fatalf("drop of unknown hook %+v", x)
	}
	if n.Suppressed != 9 || len(n.Hops) != 0 {
		t.Fatalf("notice %+v, want 9 suppressed", n)
	}
	if !ft.drops.closed {
		t.Fatal("the drop monitor was not closed")
	}
}

// TestDropMonitorCount: the count ends the monitor.
func TestDropMonitorCount(t *testing.T) {
	h, ft := traceHarness(t, newFakeSession())
	ft.drops = newFakeDropSession(drop(1, 0, 0, trace.HookIngress, 5), drop(2, 3, 7, trace.HookIngress, 5))
	paths, err := collect(t, h, TraceOptions{Drops: true, Count: 1, Duration: time.Hour})
	if err != nil || len(paths) != 1 || paths[0].Hops[0].Module != "counter" {
		t.Fatalf("paths %+v, %v; want the counter's drop only", paths, err)
	}
}

// TestDropFilter: the kernel's filter for a drop monitor's options; only our
// instances' drops, and unattributed ones on our interfaces (Ours).
func TestDropFilter(t *testing.T) {
	ifs := map[int]traceIface{5: {name: "oak5", service: "a/0"}, 2: {name: "eth0"}}
	v := dropView{instances: map[uint32]traceTarget{3: {}, 1: {}}, ifaces: ifs}
	in, eg := uint8(1<<trace.HookIngress), uint8(1<<trace.HookEgress)
	ours := []uint32{1, 3}
	all := map[int]uint8{5: in | eg, 2: in | eg}
	for _, c := range []struct {
		name string
		o    TraceOptions
		want trace.DropFilter
	}{
		{"everything", TraceOptions{Rate: 1000}, trace.DropFilter{OtherHooks: in | eg, Ifaces: all, Rate: 500, Burst: 500}},
		{"a service", TraceOptions{Service: "a"}, trace.DropFilter{Only: true, OtherHooks: in | eg, Ifaces: all}},
		{"in, everywhere", TraceOptions{Direction: "in"}, trace.DropFilter{HooksFiltered: true, OtherHooks: in, Ifaces: map[int]uint8{5: eg, 2: in}}},
		{"out, packet", TraceOptions{Direction: "out", Proto: 6, Port: 80, Host: netip.MustParseAddr("10.0.0.1")},
			trace.DropFilter{HooksFiltered: true, OtherHooks: eg, Ifaces: map[int]uint8{5: in, 2: eg}, Proto: 6, Port: 80, Host: netip.MustParseAddr("10.0.0.1")}},
	} {
		got, err := dropFilter(c.o, v, 2)
		if err != nil {
			t.Fatal(err)
		}
		c.want.Ours, c.want.Instances = true, ours
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	if _, err := dropFilter(TraceOptions{Direction: "up"}, v, 1); err == nil {
		t.Fatal("direction up accepted")
	}
}

// TestInstanceNum: an instance's nm_instance is its numeric id.
func TestInstanceNum(t *testing.T) {
	for id, want := range map[string]uint32{"1": 1, "4242": 4242, "x": 0, "": 0} {
		if got := (&instance{id: id}).num(); got != want {
			t.Errorf("num(%q) = %d, want %d", id, got, want)
		}
	}
}

// TestDropMonitorDrains: at the end of its duration the monitor emits the
// drops still queued (the kernel does not wake the reader per drop).
func TestDropMonitorDrains(t *testing.T) {
	h, ft := traceHarness(t, newFakeSession())
	ft.drops = newFakeDropSession()
	ft.drops.late = []trace.Drop{drop(2, 3, 7, trace.HookIngress, 5), drop(2, 3, 8, trace.HookIngress, 5)}
	paths, err := collect(t, h, TraceOptions{Drops: true, Duration: 150 * time.Millisecond})
	if err != nil || len(paths) != 2 || paths[1].Hops[0].Detail != 8 {
		t.Fatalf("paths %+v, %v; want the two queued drops", paths, err)
	}
}
