package main

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket/layers"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
	"github.com/oakestra/netmanager/test/kfeatures"
)

// The next-hop caches follow the kernel: a changed neighbour or route is
// used by the next packets after its netlink event, a failed lookup is
// never cached, and a role taken away is no longer used. The gateways here
// refresh only on events (nexthopRefresh 0s), so nothing else could
// explain a change being followed; and every packet is run on every CPU
// (the caches are per CPU), so a CPU that had not cached the old answer
// cannot either.

var (
	newMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0x0e, 0x01}
	routeMAC = net.HardwareAddr{0x02, 0, 0, 0, 0x0e, 0x02}
)

const eventsOnly = `, "nexthopRefresh": "0s"`

// eventually runs a packet through check until it says the packet went as
// wanted, for up to two seconds (the event's bump is asynchronous; it
// takes microseconds to milliseconds).
// cachedRounds fails unless three rounds of send reach the cached next hop
// without a lookup. An unrelated netlink event in the namespace (a
// neighbour's state moving on) bumps the generation and costs a round one
// lookup per CPU, so the rounds may be tried 5 times.
func cachedRounds(t *testing.T, w *gw, send func() (bool, string)) {
	t.Helper()
	var l uint64
	for try := 0; try < 5; try++ {
		l0 := w.counter(t, "nexthopLookups")
		for range 3 {
			if ok, got := send(); !ok {
				t.Fatalf("cached: the packet went %s", got)
			}
		}
		if l = w.counter(t, "nexthopLookups") - l0; l == 0 {
			return
		}
	}
	t.Fatalf("%d lookups for packets to a cached next hop, in each of 5 tries", l)
}

func eventually(t *testing.T, what string, check func() (bool, string)) {
	t.Helper()
	var got string
	for start := time.Now(); time.Since(start) < 2*time.Second; time.Sleep(5 * time.Millisecond) {
		var ok bool
		if ok, got = check(); ok {
			t.Logf("%s: followed after %v", what, time.Since(start).Round(time.Millisecond))
			return
		}
	}
	t.Fatalf("%s: after 2 s the packet still went %s", what, got)
}

// runAll runs nm_ingress on frame as if it arrived on ifname once on each
// CPU, the thread pinned there, and returns each verdict and frame.
func (w *gw) runAll(t *testing.T, ifname string, frame []byte) ([]int32, [][]byte) {
	t.Helper()
	var vs []int32
	var outs [][]byte
	for cpu := range w.ncpu(t) {
		pinned := func(fn func() error) error {
			return w.ns.Do(func() error {
				var was, on unix.CPUSet
				if err := unix.SchedGetaffinity(0, &was); err != nil {
					return err
				}
				on.Set(cpu)
				if err := unix.SchedSetaffinity(0, &on); err != nil {
					return fmt.Errorf("pin to CPU %d: %w", cpu, err)
				}
				defer func() { _ = unix.SchedSetaffinity(0, &was) }()
				return fn()
			})
		}
		v, out := bpftest.RunIn(t, pinned, w.coll.Programs[module.ProgramIngress], frame,
			bpftest.SkbCtx{Ifindex: uint32(w.ifidx[ifname])})
		vs, outs = append(vs, v), append(outs, out)
	}
	return vs, outs
}

// every checks each CPU's packet with ok; it returns false and what the
// first CPU that failed did.
func every(vs []int32, outs [][]byte, ok func(int32, []byte) bool) (bool, string) {
	for cpu, v := range vs {
		if !ok(v, outs[cpu]) {
			return false, fmt.Sprintf("on CPU %d: %s", cpu, sent(v, outs[cpu]))
		}
	}
	return true, ""
}

// sent describes where a frame out of the data plane goes.
func sent(v int32, out []byte) string {
	if len(out) < 12 {
		return "verdict " + bpftest.Verdict(v)
	}
	return "verdict " + bpftest.Verdict(v) + " to " + net.HardwareAddr(out[:6]).String() + " from " + net.HardwareAddr(out[6:12]).String()
}

func (w *gw) ncpu(t *testing.T) int {
	t.Helper()
	n, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (w *gw) mac(t *testing.T, ifname string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	err := w.ns.Do(func() error {
		l, err := netlink.LinkByName(ifname)
		if err == nil {
			mac = l.Attrs().HardwareAddr
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// Uplink: WAN 1's next hop without a neighbour entry goes to the kernel
// (bpf_redirect_neigh, the frame's MACs untouched) and is asked again for
// every packet; once it has one, its MAC is cached (no more lookups); a
// new MAC for it and its removal are followed.
func TestEncapNexthopCache(t *testing.T) {
	w := newGW(t, `[{"id": 1, "dst": "10.2.0.0/16", "action": "redirect", "target": "wan1"}]`, `[]`, eventsOnly)
	in := lanTCP(t, "10.2.0.7", 40000, 5001, 0, 10)
	wanMAC := w.mac(t, "wan1")
	to := func(want net.HardwareAddr) func() (bool, string) {
		return func() (bool, string) {
			vs, outs := w.runAll(t, "lan0", in)
			return every(vs, outs, func(v int32, out []byte) bool {
				return v == redirect && bytes.Equal(out[:6], want) && bytes.Equal(out[6:12], wanMAC)
			})
		}
	}
	unresolved := func() (bool, string) {
		vs, outs := w.runAll(t, "lan0", in)
		return every(vs, outs, func(v int32, out []byte) bool { return v == redirect && bytes.Equal(out[:12], in[:12]) })
	}

	l0 := w.counter(t, "nexthopLookups")
	for range 3 {
		if ok, got := unresolved(); !ok {
			t.Fatalf("no neighbour: the packet went %s, want it to the kernel's neighbour code with its MACs", got)
		}
	}
	if l, n := w.counter(t, "nexthopLookups")-l0, 3*uint64(w.ncpu(t)); l != n {
		t.Fatalf("no neighbour: %d lookups for %d packets, want as many (a failure is not cached)", l, n)
	}
	w.ns.MustExec(t, "ip", "neigh", "add", "192.0.2.2", "lladdr", peerMAC.String(), "dev", "wan1", "nud", "permanent")
	eventually(t, "neighbour added", to(peerMAC))
	cachedRounds(t, w, to(peerMAC))
	w.ns.MustExec(t, "ip", "neigh", "replace", "192.0.2.2", "lladdr", newMAC.String(), "dev", "wan1", "nud", "permanent")
	eventually(t, "neighbour's MAC changed", to(newMAC))
	w.ns.MustExec(t, "ip", "neigh", "del", "192.0.2.2", "dev", "wan1")
	eventually(t, "neighbour deleted", unresolved)
}

// Downlink: the LAN host's MAC is cached; a new MAC, a route through
// another neighbour, a route MTU, and the neighbour's removal and return
// are each followed by the next packets.
func TestDecapNexthopCache(t *testing.T) {
	w := newGW(t, `[]`, `[]`, eventsOnly)
	lanIf := w.mac(t, "lan0")
	inner := bpftest.Serialize(t, ip4("10.2.0.7", "10.1.0.5", layers.IPProtocolUDP, 0), bpftest.UDP(53, 5000),
		bpftest.Payload(make([]byte, 600)))
	frame := greFrame(t, "192.0.2.2", "192.0.2.1", layers.EthernetTypeIPv4, inner)
	to := func(want net.HardwareAddr) func() (bool, string) {
		return func() (bool, string) {
			vs, outs := w.runAll(t, "wan1", frame)
			return every(vs, outs, func(v int32, out []byte) bool {
				return v == redirect && bytes.Equal(out[:6], want) && bytes.Equal(out[6:12], lanIf)
			})
		}
	}
	toStack := func() (bool, string) {
		vs, outs := w.runAll(t, "wan1", frame)
		return every(vs, outs, func(v int32, _ []byte) bool { return v == next })
	}

	if ok, got := to(hostMAC)(); !ok {
		t.Fatalf("the packet went %s, want it to the host %s", got, hostMAC)
	}
	cachedRounds(t, w, to(hostMAC))
	w.ns.MustExec(t, "ip", "neigh", "replace", "10.1.0.5", "lladdr", newMAC.String(), "dev", "lan0", "nud", "permanent")
	eventually(t, "host's MAC changed", to(newMAC))

	w.ns.MustExec(t, "ip", "neigh", "add", "10.1.0.9", "lladdr", routeMAC.String(), "dev", "lan0", "nud", "permanent")
	w.ns.MustExec(t, "ip", "route", "add", "10.1.0.5/32", "via", "10.1.0.9", "dev", "lan0")
	eventually(t, "route through 10.1.0.9 added", to(routeMAC))
	w.ns.MustExec(t, "ip", "route", "change", "10.1.0.5/32", "via", "10.1.0.9", "dev", "lan0", "mtu", "lock", "600")
	eventually(t, "route MTU 600 (the packet has 628 bytes)", toStack)
	w.ns.MustExec(t, "ip", "route", "del", "10.1.0.5/32")
	eventually(t, "route deleted", to(newMAC))

	stack0 := w.counter(t, "toStack")
	w.ns.MustExec(t, "ip", "neigh", "del", "10.1.0.5", "dev", "lan0")
	eventually(t, "host's neighbour deleted", toStack)
	if w.counter(t, "toStack") == stack0 {
		t.Error("packets without a neighbour were not counted as toStack")
	}
	w.ns.MustExec(t, "ip", "neigh", "add", "10.1.0.5", "lladdr", hostMAC.String(), "dev", "lan0", "nud", "permanent")
	eventually(t, "host's neighbour back", to(hostMAC))

	if !kfeatures.DecapFlags(t) {
		return // IPv6 inner packets need the decap flags (README)
	}
	inner6 := bpftest.Serialize(t, bpftest.IPv6("fd02::7", "fd01::5", layers.IPProtocolUDP), bpftest.UDP(53, 5000),
		bpftest.Payload([]byte("answer")))
	frame = greFrame(t, "192.0.2.2", "192.0.2.1", layers.EthernetTypeIPv6, inner6)
	eventually(t, "IPv6", to(hostMAC))
	w.ns.MustExec(t, "ip", "-6", "neigh", "replace", "fd01::5", "lladdr", newMAC.String(), "dev", "lan0", "nud", "permanent")
	eventually(t, "IPv6 host's MAC changed", to(newMAC))
}

// A role taken away (Detach) is not used by the next packets, though this
// CPU cached it; given back (Attach), it is.
func TestRoleCacheFollowsDetach(t *testing.T) {
	w := newGW(t, `[{"id": 1, "dst": "10.2.0.0/16", "action": "redirect", "target": "wan1"}]`, `[]`, eventsOnly)
	in := lanTCP(t, "10.2.0.7", 40000, 5001, 0, 10)
	want := func(what string, verdict int32) {
		t.Helper()
		vs, outs := w.runAll(t, "lan0", in)
		if ok, got := every(vs, outs, func(v int32, _ []byte) bool { return v == verdict }); !ok {
			t.Fatalf("%s: the packet went %s, want %s", what, got, bpftest.Verdict(verdict))
		}
	}
	want("attached", redirect)
	att := module.Attachment{Interface: module.Interface{Name: "lan0", Ifindex: w.ifidx["lan0"]}, Hooks: module.Hooks}
	if err := w.g.Detach(att); err != nil {
		t.Fatal(err)
	}
	want("detached (no role)", next)
	if err := w.ns.Do(func() error { return w.g.Attach(att) }); err != nil {
		t.Fatal(err)
	}
	want("attached again", redirect)
}

// With nexthopRefresh, the generation moves on without any event: an
// answer netlink never reports a change of (a path MTU learned from ICMP)
// lives at most that long.
func TestNexthopRefresh(t *testing.T) {
	w := newGW(t, `[]`, `[]`, `, "nexthopRefresh": "20ms"`)
	gen := func() uint32 {
		var c sdCache
		if err := w.coll.Maps["cache"].Lookup(uint32(0), &c); err != nil {
			t.Fatal(err)
		}
		if c.NHSlots != 1024 {
			t.Fatalf("nh_slots %d, want the map's 1024", c.NHSlots)
		}
		return c.Gen
	}
	g0 := gen()
	time.Sleep(300 * time.Millisecond)
	if g := gen(); g < g0+5 {
		t.Fatalf("generation %d → %d in 300 ms with a 20 ms refresh", g0, g)
	}
}
