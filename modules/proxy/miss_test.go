package main

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
)

type missEv struct {
	svc, sender netip.Addr
	proto       uint8
}

// nextMiss reads one miss event, or reports none within wait.
func nextMiss(t *testing.T, rd *ringbuf.Reader, wait time.Duration) (missEv, bool) {
	t.Helper()
	rd.SetDeadline(time.Now().Add(wait))
	rec, err := rd.Read()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return missEv{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	svc, sender, proto, err := parseMiss(rec.RawSample)
	if err != nil {
		t.Fatal(err)
	}
	return missEv{svc, sender, proto}, true
}

// A miss is reported once per service IP and interval; hits, addresses
// outside the service range and malformed packets are not reported.
func TestMissEvents(t *testing.T) {
	d := newDP(t)
	rd, err := ringbuf.NewReader(d.coll.Maps["misses"])
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	expect := func(what string, want *missEv) {
		t.Helper()
		got, ok := nextMiss(t, rd, 200*time.Millisecond)
		if want == nil && ok {
			t.Fatalf("%s: unexpected event %+v", what, got)
		}
		if want != nil && (!ok || got != *want) {
			t.Fatalf("%s: event %+v (%v), want %+v", what, got, ok, *want)
		}
	}
	if v, _ := d.run(t, tcpFrame(t, "10.18.0.2", "10.30.99.1", 1, 80)); v != next {
		t.Fatalf("miss verdict %s", bpftest.Verdict(v))
	}
	expect("first miss", &missEv{v6("10.30.99.1"), v6("10.18.0.2"), 6})
	d.run(t, tcpFrame(t, "10.18.0.2", "10.30.99.1", 2, 80))
	d.run(t, bpftest.Serialize(t, eth(), bpftest.IPv4("10.18.0.3", "10.30.99.1", layers.IPProtocolUDP), bpftest.UDP(1, 2)))
	expect("misses within the interval", nil)
	d.run(t, bpftest.Serialize(t, eth(), bpftest.IPv4("10.18.0.77", "10.30.0.1", layers.IPProtocolUDP), bpftest.UDP(1, 2)))
	expect("another service IP", &missEv{v6("10.30.0.1"), v6("10.18.0.77"), 17})
	d.run(t, tcp6(t, "fd00:18::2", "fdff:2000::99", 1, 80))
	expect("IPv6", &missEv{v6("fdff:2000::99"), v6("fd00:18::2"), 6})
	d.run(t, tcpFrame(t, "10.18.0.2", "10.30.0.1", 1, 80))             // a new session
	d.run(t, tcpFrame(t, "10.18.0.2", "10.30.0.1", 1, 80))             // a hit
	d.run(t, tcpFrame(t, "10.18.0.2", "192.0.2.1", 1, 80))             // not a service IP
	d.run(t, tcpFrame(t, "10.18.0.2", "10.30.99.7", 1, 80)[:14+20+10]) // truncated
	expect("no misses", nil)
	// Once the interval is over, the next miss is reported again.
	key := netip.MustParseAddr("::ffff:10.30.99.1").As16()
	if err := d.coll.Maps["miss_limit"].Put(key, uint64(0)); err != nil {
		t.Fatal(err)
	}
	d.run(t, tcpFrame(t, "10.18.0.2", "10.30.99.1", 3, 80))
	expect("after the interval", &missEv{v6("10.30.99.1"), v6("10.18.0.2"), 6})
	if n := d.stat(t, statMissDropped); n != 0 {
		t.Fatalf("%d events dropped", n)
	}
}

// A full ring buffer drops events and counts them.
func TestMissRingFull(t *testing.T) {
	bpftest.RequireRoot(t)
	spec, err := ebpf.LoadCollectionSpec(bpftest.ModuleObject(t, "modules", "proxy"))
	if err != nil {
		t.Fatal(err)
	}
	spec.Maps["misses"].MaxEntries = uint32(os.Getpagesize())
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	d := &dp{coll: coll}
	const n = 200
	for i := 0; i < n; i++ {
		d.run(t, tcpFrame(t, "10.18.0.2", netip.AddrFrom4([4]byte{10, 30, 100, byte(i)}).String(), 1, 80))
	}
	rd, err := ringbuf.NewReader(coll.Maps["misses"])
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	events := 0
	for {
		if _, ok := nextMiss(t, rd, 50*time.Millisecond); !ok {
			break
		}
		events++
	}
	dropped := d.stat(t, statMissDropped)
	if events == 0 || dropped == 0 || events+int(dropped) != n {
		t.Fatalf("%d events, %d dropped; want both and %d in all", events, dropped, n)
	}
}

func TestDecideMiss(t *testing.T) {
	table := &fakeTable{entries: tableEntries()}
	remote := func() map[netip.Addr]local { // web's instance 1 is not on this node
		m := attachedAll()
		delete(m, v6("10.18.0.4"))
		return m
	}
	noV6 := func() map[netip.Addr]local {
		m := attachedAll()
		for k, l := range m {
			l.nsIP6 = netip.Addr{}
			m[k] = l
		}
		return m
	}
	for _, c := range []struct {
		name        string
		svc, sender string
		attached    map[netip.Addr]local
		translated  bool
		want        missOutcome
	}{
		{"local instances, translation missing", "10.30.0.1", "10.18.0.2", attachedAll(), false, missResync},
		{"local instances, translation there", "10.30.0.1", "10.18.0.2", attachedAll(), true, missPresent},
		{"IPv6, translation missing", "fdff:2000::1", "fd00:18::2", attachedAll(), false, missResync},
		{"instance IP of a remote instance", "10.30.0.11", "10.18.0.2", remote(), false, missNoLocal},
		{"round robin with one instance not attached", "10.30.0.1", "10.18.0.2", remote(), false, missResync},
		{"unknown service IP", "10.30.99.1", "10.18.0.2", attachedAll(), false, missNoLocal},
		{"sender not a local service", "10.30.0.1", "10.18.0.77", attachedAll(), false, missNoLocal},
		{"IPv6 sender not a local service", "fdff:2000::1", "fd00:18::77", attachedAll(), false, missNoLocal},
		{"IPv6 sender without an attached IPv6 address", "fdff:2000::1", "fd00:18::2", noV6(), false, missNoLocal},
		{"nothing attached", "10.30.0.1", "10.18.0.2", map[netip.Addr]local{}, false, missNoLocal},
	} {
		svc := v6(c.svc)
		if got := decideMiss(svc, v6(c.sender), table.Lookup(svc), c.attached, c.translated); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	// Cluster mode: an instance on another node makes its round robin the
	// user-space proxy's; the local instances' own IPs stay the kernel's.
	found := table.Lookup(v6("10.30.0.1"))
	for i := range found {
		found[i].Remote = found[i].Instance == 1
	}
	if got := decideMiss(v6("10.30.0.1"), v6("10.18.0.2"), found, attachedAll(), false); got != missNoLocal {
		t.Errorf("round robin spanning nodes: %d, want missNoLocal", got)
	}
	if got := decideMiss(v6("10.30.0.10"), v6("10.18.0.2"), table.Lookup(v6("10.30.0.10")), attachedAll(), false); got != missResync {
		t.Errorf("a local instance IP beside a remote instance: %d, want missResync", got)
	}
}

// A translation missing from the maps (a push that went wrong) is restored
// after one missed packet; a miss with no local instance is left alone.
func TestMissRestoresTranslation(t *testing.T) {
	d := newDPWithMisses(t)
	for i, c := range []struct {
		name  string
		m     string
		key   any
		frame func(sport uint16) []byte
	}{
		{"IPv4 service removed", "services", v6("10.30.0.1").As4(), func(p uint16) []byte { return tcpFrame(t, "10.18.0.2", "10.30.0.1", p, 80) }},
		{"IPv6 sender removed", "senders6", v6("fd00:18::2").As16(), func(p uint16) []byte { return tcp6(t, "fd00:18::2", "fdff:2000::1", p, 80) }},
	} {
		if err := d.coll.Maps[c.m].Delete(c.key); err != nil {
			t.Fatal(err)
		}
		if v, _ := d.run(t, c.frame(1000)); v != next {
			t.Fatalf("%s: first packet %s, want NEXT", c.name, bpftest.Verdict(v))
		}
		deadline := time.Now().Add(3 * time.Second)
		v, _ := d.run(t, c.frame(1001))
		for ; v != redirect && time.Now().Before(deadline); v, _ = d.run(t, c.frame(1001)) {
			time.Sleep(10 * time.Millisecond)
		}
		if v != redirect {
			t.Fatalf("%s: not restored: %s", c.name, bpftest.Verdict(v))
		}
		// The push that restored this translation may still be writing the
		// rest of the tables: wait for it to end before the next case deletes
		// an entry, or the push would put that entry back before its miss.
		for want := uint64(i + 1); d.px.counters.resolved.Load()+d.px.counters.unresolved.Load() < want && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	d.run(t, tcpFrame(t, "10.18.0.2", "10.30.99.1", 1, 80)) // no instance anywhere
	want := map[string]uint64{"misses": 3, "resolved": 2, "unresolved": 1}
	deadline := time.Now().Add(3 * time.Second)
	var got map[string]uint64
	for {
		rec := httptest.NewRecorder()
		d.px.serveStats(rec, httptest.NewRequest("GET", "/stats", nil))
		got = nil
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got["misses"] == want["misses"] && got["unresolved"] == want["unresolved"] || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("stats %s = %d, want %d (%v)", k, got[k], v, got)
		}
	}
	if _, ok := got["missEventsDropped"]; !ok || got["hits"] != 0 {
		t.Errorf("stats %v", got)
	}
}

// Close stops the reader's goroutine and may be called before the maps close.
func TestCloseStopsReader(t *testing.T) {
	d := newDPWithMisses(t)
	done := d.px.readerDone
	errc := make(chan error, 1)
	go func() { errc <- d.px.Close() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	select {
	case <-done:
	default:
		t.Fatal("the reader's goroutine outlived Close")
	}
	if err := d.px.Close(); err != nil { // the manager's Close after a failed instance, or a test cleanup
		t.Fatal(err)
	}
}

var _ module.Module = (*Proxy)(nil)
