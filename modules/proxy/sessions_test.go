package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
)

// The session tables at scale. Flows are TCP from client instances
// (namespace 10.18.1.k, instance IP 10.30.1.k, host veth 100+k, MAC
// 02:00:00:01:00:k) to web's round-robin IP 10.30.0.1:80, whose three
// instances are the fixture's (10.18.0.3-5, MAC 02:..:03-05).

var webRR = [4]byte{10, 30, 0, 1}

// loadClient is client k (0-based).
type loadClient struct {
	ns, inst [4]byte
	mac      [6]byte
}

func clientOf(k int) loadClient {
	return loadClient{ns: [4]byte{10, 18, 1, byte(k + 1)}, inst: [4]byte{10, 30, 1, byte(k + 1)}, mac: [6]byte{0x02, 0, 0, 1, 0, byte(k + 1)}}
}

// newLoadDP is the fixture's data plane with the config's map sizes
// (MapSizes, as the eBPF Manager loads it) and clients more client
// instances, attached.
func newLoadDP(t testing.TB, config string, clients int) *dp {
	t.Helper()
	bpftest.RequireRoot(t)
	sizes, err := MapSizes(json.RawMessage(config))
	if err != nil {
		t.Fatal(err)
	}
	es, attached := tableEntries(), attachedAll()
	for k := range clients {
		c := clientOf(k)
		es = append(es, module.ServiceEntry{Name: fmt.Sprintf("app.ns.load%d.ns", k), NsIP: netip.AddrFrom4(c.ns),
			ServiceIPs: []module.ServiceIP{{Policy: "instance", Address: netip.AddrFrom4(c.inst)}}})
		attached[netip.AddrFrom4(c.ns)] = local{ifindex: uint32(100 + k), mac: c.mac}
	}
	return wireDP(t, bpftest.LoadSized(t, "modules", "proxy", sizes), json.RawMessage(config), es, attached, false)
}

// Offsets in a frame of Ethernet, IPv4 without options, TCP without options.
const (
	offIP, offIPSum, offSrc, offDst = 14, 24, 26, 30
	offTCP, offTCPSum               = 34, 50
)

// tcp4 is a 4-byte TCP segment from src to dst in an Ethernet frame from
// smac, both checksums complete; frames of other flows are made from it by
// setFlow.
func tcp4(t testing.TB, smac [6]byte) []byte {
	f := tcpFrame(t, "10.18.1.1", "10.30.0.1", 1, 80)
	copy(f[6:12], smac[:])
	return f
}

// setFlow rewrites a tcp4 frame's addresses and ports and computes both
// checksums from scratch.
func setFlow(f []byte, smac [6]byte, src, dst [4]byte, sport, dport uint16) {
	copy(f[6:12], smac[:])
	copy(f[offSrc:], src[:])
	copy(f[offDst:], dst[:])
	binary.BigEndian.PutUint16(f[offTCP:], sport)
	binary.BigEndian.PutUint16(f[offTCP+2:], dport)
	binary.BigEndian.PutUint16(f[offIPSum:], 0)
	binary.BigEndian.PutUint16(f[offIPSum:], ^uint16(bpftest.Sum16(0, f[offIP:offTCP])))
	binary.BigEndian.PutUint16(f[offTCPSum:], 0)
	seg := f[offTCP : offIP+int(binary.BigEndian.Uint16(f[offIP+2:]))] // not the frame's padding
	binary.BigEndian.PutUint16(f[offTCPSum:], ^uint16(bpftest.Sum16(pseudo(src[:], dst[:], 6, len(seg)), seg)))
}

// wantFrame is what a translated packet must be.
type wantFrame struct {
	dmac         [6]byte
	src, dst     [4]byte
	sport, dport uint16
}

// checkFrame checks a translated frame without gopacket (millions of them):
// MACs (from the bridge), addresses, ports, and both checksums verified
// from scratch.
func checkFrame(out []byte, w wantFrame) error {
	if len(out) < offTCPSum+2 {
		return fmt.Errorf("frame of %d bytes", len(out))
	}
	switch {
	case [6]byte(out[0:6]) != w.dmac || [6]byte(out[6:12]) != gwMAC:
		return fmt.Errorf("MACs %x -> %x, want %x -> %x", out[6:12], out[0:6], gwMAC, w.dmac)
	case [4]byte(out[offSrc:]) != w.src || [4]byte(out[offDst:]) != w.dst:
		return fmt.Errorf("addresses %v -> %v, want %v -> %v", out[offSrc:offSrc+4], out[offDst:offDst+4], w.src, w.dst)
	case binary.BigEndian.Uint16(out[offTCP:]) != w.sport || binary.BigEndian.Uint16(out[offTCP+2:]) != w.dport:
		return fmt.Errorf("ports %d -> %d, want %d -> %d", binary.BigEndian.Uint16(out[offTCP:]), binary.BigEndian.Uint16(out[offTCP+2:]), w.sport, w.dport)
	case bpftest.Sum16(0, out[offIP:offTCP]) != 0xffff:
		return fmt.Errorf("IPv4 header checksum is wrong")
	}
	seg := out[offTCP : offIP+int(binary.BigEndian.Uint16(out[offIP+2:]))]
	if bpftest.Sum16(pseudo(w.src[:], w.dst[:], 6, len(seg)), seg) != 0xffff {
		return fmt.Errorf("TCP checksum is wrong")
	}
	return nil
}

// webBackend is web's instance b (0-2): namespace IP and MAC.
func webBackend(b int) ([4]byte, [6]byte) {
	return [4]byte{10, 18, 0, byte(3 + b)}, [6]byte{0x02, 0, 0, 0, 0, byte(3 + b)}
}

// loadRun runs the data plane over flows [0, n) split between workers,
// each with its own buffers; one(i, frame) crafts flow i's frame and
// returns the check of its output. It returns the failures and the first
// few of their messages.
func (d *dp) loadRun(t testing.TB, n, workers int, tmpl []byte, one func(i int, f []byte) func(v int32, out []byte) error) (int64, []string) {
	t.Helper()
	prog := d.coll.Programs[module.ProgramIngress]
	var failed atomic.Int64
	var mu sync.Mutex
	var msgs []string
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, out := append([]byte(nil), tmpl...), make([]byte, len(tmpl)+256)
			for i := w * n / workers; i < (w+1)*n/workers; i++ {
				check := one(i, f)
				opts := ebpf.RunOptions{Data: f, DataOut: out}
				ret, err := prog.Run(&opts)
				if err == nil {
					err = check(int32(ret), opts.DataOut)
				}
				if err != nil && failed.Add(1) <= 5 {
					mu.Lock()
					msgs = append(msgs, fmt.Sprintf("flow %d: %v", i, err))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return failed.Load(), msgs
}

// sessionCount is GET /sessions' count (both families).
func (d *dp) sessionCount(t testing.TB) int {
	t.Helper()
	rec := httptest.NewRecorder()
	d.px.serveSessions(rec, httptest.NewRequest("GET", "/sessions", nil))
	var body struct{ Count int }
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
		t.Fatalf("GET /sessions: %d %s", rec.Code, rec.Body)
	}
	return body.Count
}

// memlock is the kernel's figure for a map's memory (fdinfo's memlock).
func (d *dp) memlock(t testing.TB, name string) uint64 {
	t.Helper()
	info, err := d.coll.Maps[name].Info()
	if err != nil {
		t.Fatalf("info of %s: %v", name, err)
	}
	b, ok := info.Memlock()
	if !ok {
		t.Fatalf("the kernel gives no memlock for %s", name)
	}
	return b
}

func redirected(v int32) error {
	if v != redirect {
		return fmt.Errorf("verdict %s, want REDIRECT", bpftest.Verdict(v))
	}
	return nil
}

// loadFigures are what a load run measured.
type loadFigures struct {
	flows                        int
	load, forward, reply, sticky time.Duration
	count, sync, drop            time.Duration // GET /sessions, a sync (a deploy's push) at full tables, an instance's Detach dropping its sessions
	hitNs, sameNs, noopNs        float64       // the kernel's time per packet: a hit on a random flow, on one flow, a no-op program
	memlock4, memlock6           uint64        // bytes, sessions and sessions6
	entries4, entries6           uint32        // their max_entries
}

// flowSet is n flows, client i/per's source port 1024+i%per for flow i,
// and the instance (0-2) each went to.
type flowSet struct {
	per     int
	backend []uint8
}

func (s *flowSet) flow(i int) (loadClient, uint16) {
	return clientOf(i / s.per), uint16(1024 + i%s.per)
}

// forward crafts flow i's packet to web's round-robin IP and checks that it
// went to an instance, translated: on the first pass it notes which, later
// it must be the same one.
func (s *flowSet) forward(first bool) func(int, []byte) func(int32, []byte) error {
	return func(i int, f []byte) func(int32, []byte) error {
		c, port := s.flow(i)
		setFlow(f, c.mac, c.ns, webRR, port, 80)
		return func(v int32, out []byte) error {
			if err := redirected(v); err != nil {
				return err
			}
			if b := int(out[offDst+3]) - 3; first && b >= 0 && b <= 2 {
				s.backend[i] = uint8(b)
			}
			ns, mac := webBackend(int(s.backend[i]))
			return checkFrame(out, wantFrame{dmac: mac, src: c.inst, dst: ns, sport: port, dport: 80})
		}
	}
}

// reply crafts the reply of flow i's instance and checks that it goes back
// to the client from the service IP.
func (s *flowSet) reply(i int, f []byte) func(int32, []byte) error {
	c, port := s.flow(i)
	ns, mac := webBackend(int(s.backend[i]))
	setFlow(f, mac, ns, c.inst, 80, port)
	return func(v int32, out []byte) error {
		if err := redirected(v); err != nil {
			return err
		}
		return checkFrame(out, wantFrame{dmac: c.mac, src: webRR, dst: c.ns, sport: 80, dport: port})
	}
}

// holdFlows drives n distinct TCP flows from clients instances (distinct
// source address and port) through web's round-robin IP with the data
// plane sized by config, over BPF_PROG_TEST_RUN on two workers (the
// machine's CPUs): every first packet must be translated to one of web's
// instances (addresses, ports, MACs and both checksums checked), the
// instances taken in turn; then every reply from the instance chosen must
// be translated back to the client (source: the service IP); then every
// flow's next packet must go to the same instance as its first — all n
// flows' sessions held at once, 2n entries, which GET /sessions must
// count. No packet may fail, be dropped or passed on.
func holdFlows(t testing.TB, config string, n, clients int) loadFigures {
	t.Helper()
	const workers = 2
	fig := loadFigures{flows: n}
	start := time.Now()
	d := newLoadDP(t, config, clients)
	fig.load = time.Since(start)
	fs := &flowSet{per: (n + clients - 1) / clients, backend: make([]uint8, n)}
	tmpl := tcp4(t, clientOf(0).mac)

	fig.forward = d.pass(t, "first packets", n, workers, tmpl, fs.forward(true))
	d.expectStats(t, n, 0)
	checkTurns(t, fs.backend)
	fig.count = d.expectCount(t, 2*n)
	fig.reply = d.pass(t, "replies", n, workers, tmpl, fs.reply)
	d.expectStats(t, n, n)
	fig.sticky = d.pass(t, "next packets", n, workers, tmpl, fs.forward(false))
	d.expectStats(t, n, 2*n)
	d.expectCount(t, 2*n)

	fig.hitNs, fig.sameNs, fig.noopNs = d.hitCost(t, n, tmpl, func(i int, f []byte) {
		c, port := fs.flow(i)
		setFlow(f, c.mac, c.ns, webRR, port, 80)
	})
	fig.sync = d.timeSync(t)
	fig.drop = d.dropInstance(t, 0, 2*n-2*countOf(fs.backend, 0))
	fig.memlock4, fig.memlock6 = d.memlock(t, "sessions"), d.memlock(t, "sessions6")
	fig.entries4, fig.entries6 = d.coll.Maps["sessions"].MaxEntries(), d.coll.Maps["sessions6"].MaxEntries()
	return fig
}

// pass runs one pass of loadRun and fails the test on any failure.
func (d *dp) pass(t testing.TB, what string, n, workers int, tmpl []byte, one func(int, []byte) func(int32, []byte) error) time.Duration {
	t.Helper()
	start := time.Now()
	failed, msgs := d.loadRun(t, n, workers, tmpl, one)
	took := time.Since(start)
	if failed > 0 {
		t.Fatalf("%s: %d of %d failed, first: %v", what, failed, n, msgs)
	}
	t.Logf("%s: %d flows in %v (%.2f µs each)", what, n, took.Round(time.Millisecond), float64(took.Microseconds())/float64(n))
	return took
}

// hitCost is the kernel's own time per packet (BPF_PROG_TEST_RUN's, one
// run per packet, as BenchmarkTunnel measures) of hitSamples next packets:
// of flows taken at random, the session table's cache misses included; of
// one flow over and over; of a no-op program.
func (d *dp) hitCost(t testing.TB, n int, tmpl []byte, craft func(i int, f []byte)) (random, same, noop float64) {
	t.Helper()
	const hitSamples = 100000
	f := append([]byte(nil), tmpl...)
	prog := d.coll.Programs[module.ProgramIngress]
	cases := []struct {
		prog *ebpf.Program
		flow func() int
		want int32
	}{{prog, func() int { return rand.IntN(n) }, redirect}, {prog, func() int { return 0 }, redirect}, {bpftest.Noop(t), func() int { return 0 }, next}}
	var ns [3]float64
	for range hitSamples {
		for k, c := range cases {
			craft(c.flow(), f)
			ret, took, err := c.prog.Benchmark(f, 1, nil)
			if err != nil || int32(ret) != c.want {
				t.Fatalf("%v: verdict %s, %v", c.prog, bpftest.Verdict(int32(ret)), err)
			}
			ns[k] += float64(took.Nanoseconds()) / hitSamples
		}
	}
	d.expectStats(t, n, 2*n+2*hitSamples)
	return ns[0], ns[1], ns[2]
}

// dropInstance drops the sessions of web's instance b as its Detach does
// and checks that left remain; it returns how long the drop took.
func (d *dp) dropInstance(t testing.TB, b int, left int) time.Duration {
	t.Helper()
	ns, _ := webBackend(b)
	d.px.mu.Lock()
	start := time.Now()
	err := d.px.dropSessions(netip.AddrFrom4(ns), netip.Addr{})
	took := time.Since(start)
	d.px.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	d.expectCount(t, left)
	return took
}

func countOf(backend []uint8, b uint8) (n int) {
	for _, x := range backend {
		if x == b {
			n++
		}
	}
	return n
}

// expectStats: new sessions and hits as counted, nothing passed on,
// malformed or dropped.
func (d *dp) expectStats(t testing.TB, newSessions, hits int) {
	t.Helper()
	got := [...]uint64{d.stat(t, statNew), d.stat(t, statHit), d.stat(t, statPass), d.stat(t, statMalformed), d.stat(t, statError)}
	if want := [...]uint64{uint64(newSessions), uint64(hits), 0, 0, 0}; got != want {
		t.Fatalf("new, hits, passed, malformed, errors: %v, want %v", got, want)
	}
}

// expectCount checks GET /sessions' count and returns how long it took.
func (d *dp) expectCount(t testing.TB, want int) time.Duration {
	t.Helper()
	start := time.Now()
	n := d.sessionCount(t)
	took := time.Since(start)
	if n != want {
		t.Fatalf("GET /sessions counts %d sessions, want %d", n, want)
	}
	t.Logf("GET /sessions counted %d in %v", n, took.Round(time.Millisecond))
	return took
}

// timeSync times a push of the translations (what every attachment and
// service change does) with the session tables as they are.
func (d *dp) timeSync(t testing.TB) time.Duration {
	t.Helper()
	d.px.mu.Lock()
	defer d.px.mu.Unlock()
	start := time.Now()
	if err := d.px.sync(); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// checkTurns: the round robin gave each of web's instances a third of the
// flows, to one.
func checkTurns(t testing.TB, backend []uint8) {
	t.Helper()
	var per [3]int
	for _, b := range backend {
		per[b]++
	}
	for _, c := range per {
		if c < len(backend)/3 || c > len(backend)/3+1 {
			t.Fatalf("flows per instance %v: not in turn", per)
		}
	}
}

// logFigures reports a run's figures, memory per flow as the kernel counts
// it (two entries per flow).
func logFigures(t testing.TB, f loadFigures) {
	t.Helper()
	t.Logf("%d flows: load %v, first packets %v, replies %v, next packets %v, GET /sessions %v, sync %v, an instance's sessions dropped %v",
		f.flows, f.load.Round(time.Millisecond), f.forward.Round(time.Millisecond), f.reply.Round(time.Millisecond),
		f.sticky.Round(time.Millisecond), f.count.Round(time.Millisecond), f.sync.Round(time.Millisecond), f.drop.Round(time.Millisecond))
	t.Logf("the kernel's time per packet: a hit on a random flow %.0f ns, on one flow %.0f ns, a no-op program %.0f ns", f.hitNs, f.sameNs, f.noopNs)
	t.Logf("kernel memory: sessions %d entries %d bytes (%.1f per entry, %.1f per flow); sessions6 %d entries %d bytes (%.1f per entry, %.1f per flow)",
		f.entries4, f.memlock4, float64(f.memlock4)/float64(f.entries4), 2*float64(f.memlock4)/float64(f.entries4),
		f.entries6, f.memlock6, float64(f.memlock6)/float64(f.entries6), 2*float64(f.memlock6)/float64(f.entries6))
}

// 30,000 concurrent flows in the default tables (65,536 entries).
func TestManyFlows(t *testing.T) {
	logFigures(t, holdFlows(t, "null", 30000, 1))
}

// A million concurrent flows: maxSessions 2,097,152 (two entries per flow
// and headroom, README).
func TestMillionFlows(t *testing.T) {
	logFigures(t, holdFlows(t, `{"maxSessions": 2097152}`, 1_000_000, 16))
}

// A full table: a new flow still gets its sessions (nothing dropped or
// counted as an error) by evicting the least recently used ones, some 128
// entries at a time (the kernel's LRU refills per-CPU free lists that many
// at once), so the table holds a little under maxSessions. The oldest
// flow's sessions are gone: its reply is no longer translated back to the
// service IP but taken as a new flow from the instance to the client's
// instance IP (source: the instance's own instance IP, which the client's
// socket does not know), and its next packet is a new flow, sent to the
// instance next in turn. The packets run on one CPU: the entries a CPU
// takes sit on its own free and pending lists, where another CPU's eviction
// does not reach them, so a thread that moved between CPUs kept the oldest
// flow's sessions (failed in a CI run on 6.12).
func TestSessionTableFull(t *testing.T) {
	bpftest.OnOneCPU(t, func() { sessionTableFull(t) })
}

func sessionTableFull(t *testing.T) {
	const size = 1024
	d := newLoadDP(t, fmt.Sprintf(`{"maxSessions": %d}`, size), 1)
	c := clientOf(0)
	f := tcp4(t, c.mac)
	send := func(smac [6]byte, src, dst [4]byte, sport, dport uint16, want wantFrame) {
		t.Helper()
		setFlow(f, smac, src, dst, sport, dport)
		v, out := d.run(t, f)
		if err := redirected(v); err != nil {
			t.Fatal(err)
		}
		if err := checkFrame(out, want); err != nil {
			t.Fatal(err)
		}
	}
	for i := range size { // twice as many sessions as the table holds
		ns, mac := webBackend(i % 3)
		send(c.mac, c.ns, webRR, uint16(1024+i), 80, wantFrame{dmac: mac, src: c.inst, dst: ns, sport: uint16(1024 + i), dport: 80})
	}
	d.expectStats(t, size, 0)
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	if n := d.sessionCount(t); n > size || n < size-128*(cpus+1) {
		t.Fatalf("a full table of %d holds %d sessions", size, n)
	}
	// The newest flow is served both ways.
	last := uint16(1024 + size - 1)
	ns, mac := webBackend((size - 1) % 3)
	send(mac, ns, c.inst, 80, last, wantFrame{dmac: c.mac, src: webRR, dst: c.ns, sport: 80, dport: last})
	// The oldest one (to instance 0, 10.30.0.10) is not.
	ns, mac = webBackend(0)
	send(mac, ns, c.inst, 80, 1024, wantFrame{dmac: c.mac, src: [4]byte{10, 30, 0, 10}, dst: c.ns, sport: 80, dport: 1024})
	next, nextMAC := webBackend(size % 3)
	send(c.mac, c.ns, webRR, 1024, 80, wantFrame{dmac: nextMAC, src: c.inst, dst: next, sport: 1024, dport: 80})
	d.expectStats(t, size+2, 1)
}
