package linked

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/oakestra/netmanager/test/bpftest"
	"github.com/oakestra/netmanager/test/nstest"
)

// The benchmarks compare today's chaining (one TCX link per module
// instance, interface and hook, each placed with an anchor after the
// hook's current last program, as the eBPF Manager does) with the linked
// one (one combined program per distinct chain, loaded once, and one TCX
// link per interface and hook) on the chain packetcounter → firewall →
// proxy: nm_ingress of all three (3 links today, 1 linked) and nm_egress of
// packetcounter and firewall (the proxy has none: 2 links today, 1
// linked), so 5 TCX links per veth today against 2. The "-legacy" variants
// do the same with a clsact qdisc and direct-action cls_bpf filters (the
// eBPF Manager's fallback; a filter costs no RCU wait). Everything runs on
// veths in a namespace the benchmark creates and deletes by exact name.
// BenchmarkAttach takes ~1.5 minutes here, BenchmarkChainChange ~2,
// BenchmarkTraffic ~30 s, BenchmarkPerPacket a few seconds.
//
//	go test -run '^$' -bench . -benchtime 1x -count 1 ./ebpfManager/kernel/linked/

// benchNs is how many veths the attach benchmarks use.
var benchNs = []int{1, 50, 500}

// chainSet is the benchmark's module instances and their two chains.
type chainSet struct {
	insts []*instance // packetcounter, firewall (allow), proxy
	extra *instance   // dropmark: the module a chain change adds
}

func newChainSet(b *testing.B) *chainSet {
	b.Helper()
	bpftest.RequireRoot(b)
	return &chainSet{
		insts: []*instance{
			loadInstance(b, "modules", "packetcounter", 1),
			loadInstance(b, "modules", "firewall", 2),
			loadInstance(b, "modules", "proxy", 3),
		},
		extra: loadInstance(b, "test-modules", "dropmark", 4),
	}
}

// hookProgs are the instances' own programs for one hook, in chain order.
type hookProgs struct {
	attach ebpf.AttachType
	prog   string // nm_ingress or nm_egress
}

var hooks = []hookProgs{{ebpf.AttachTCXIngress, "nm_ingress"}, {ebpf.AttachTCXEgress, "nm_egress"}}

// programs returns, per hook, the instances' own loaded programs (today's
// links) in chain order; with extra, the added module's too.
func (c *chainSet) programs(extra bool) [][]*ebpf.Program {
	out := make([][]*ebpf.Program, len(hooks))
	for h, hk := range hooks {
		for _, in := range c.chain(extra) {
			if p := in.coll.Programs[hk.prog]; p != nil {
				out[h] = append(out[h], p)
			}
		}
	}
	return out
}

func (c *chainSet) chain(extra bool) []*instance {
	ch := slices.Clone(c.insts)
	if extra {
		ch = append(ch, c.extra)
	}
	return ch
}

// linked loads the combined program of each hook.
func (c *chainSet) linked(b *testing.B, extra bool) []*ebpf.Program {
	b.Helper()
	out := make([]*ebpf.Program, len(hooks))
	for h, hk := range hooks {
		var parts []Part
		for _, in := range c.chain(extra) {
			if p, ok := FromCollection(in.name+"_"+itoa(in.id), in.spec, in.coll, hk.prog); ok {
				parts = append(parts, p)
			}
		}
		p, err := Load("", parts, ebpf.ProgramOptions{})
		if err != nil {
			b.Fatalf("%+v", err)
		}
		out[h] = p
	}
	return out
}

func closeProgs(ps []*ebpf.Program) {
	for _, p := range ps {
		p.Close()
	}
}

// veths makes a namespace with n veth pairs (va<i>, vb<i>) and returns it
// and the ifindexes of the va side.
func veths(b *testing.B, n int) (*nstest.Netns, []int) {
	b.Helper()
	start := time.Now()
	ns := nstest.NewNetns(b, "nmlinked")
	var batch strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&batch, "link add va%d type veth peer name vb%d\n", i, i)
	}
	file := filepath.Join(b.TempDir(), "veths.batch")
	if err := os.WriteFile(file, []byte(batch.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	nstest.Run(b, "ip", "-n", ns.Name, "-batch", file)
	idx := make([]int, n)
	err := ns.Do(func() error {
		ifcs, err := net.Interfaces() // one dump: InterfaceByName dumps them all each time
		if err != nil {
			return err
		}
		byName := map[string]int{}
		for _, ifc := range ifcs {
			byName[ifc.Name] = ifc.Index
		}
		for i := range idx {
			if idx[i] = byName[fmt.Sprintf("va%d", i)]; idx[i] == 0 {
				return fmt.Errorf("no va%d", i)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("namespace %s with %d veth pairs made in %s", ns.Name, n, time.Since(start).Round(time.Millisecond))
	return ns, idx
}

// attachTail attaches prog at the end of a hook's TCX chain the way the
// eBPF Manager places a link: query the chain, anchor after its last
// program, and expect the revision the query saw.
func attachTail(ifindex int, at ebpf.AttachType, prog *ebpf.Program) (link.Link, error) {
	res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: at})
	if err != nil {
		return nil, err
	}
	anchor := link.Tail()
	if n := len(res.Programs); n > 0 {
		anchor = link.AfterProgramByID(res.Programs[n-1].ID)
	}
	return link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: at, Anchor: anchor, ExpectedRevision: res.Revision})
}

// attachAll attaches, on every interface, each hook's programs in order;
// it runs in ns. The links come back per interface and hook.
func attachAll(ns *nstest.Netns, ifindexes []int, progs [][]*ebpf.Program) ([][]link.Link, error) {
	links := make([][]link.Link, len(ifindexes)*len(hooks))
	err := ns.Do(func() error {
		for i, ifi := range ifindexes {
			for h, hk := range hooks {
				for _, p := range progs[h] {
					l, err := attachTail(ifi, hk.attach, p)
					if err != nil {
						return fmt.Errorf("attach %s to ifindex %d: %w", p, ifi, err)
					}
					links[i*len(hooks)+h] = append(links[i*len(hooks)+h], l)
				}
			}
		}
		return nil
	})
	return links, err
}

func closeLinks(links [][]link.Link) {
	for _, ls := range links {
		for _, l := range ls {
			l.Close()
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkAttach: a 3-module chain onto N veths (both hooks), today's way
// (5 TCX links per veth) against the linked way (load the two combined
// programs once, then 2 TCX links per veth). ns/op is the whole attach;
// the metrics split it (load-ms: the linked programs' loads) and add the
// detach (closing every link), which costs as much again.
func BenchmarkAttach(b *testing.B) {
	start := time.Now()
	c := newChainSet(b)
	ns, idx := veths(b, slices.Max(benchNs))
	for _, n := range benchNs {
		b.Run(fmt.Sprintf("N=%d/today", n), func(b *testing.B) {
			progs := c.programs(false)
			var attach, detach time.Duration
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				links, err := attachAll(ns, idx[:n], progs)
				attach += time.Since(t0)
				b.StopTimer()
				t1 := time.Now()
				closeLinks(links)
				detach += time.Since(t1)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(ms(attach)/float64(b.N), "attach-ms")
			b.ReportMetric(ms(attach)/float64(b.N*n), "ms/veth")
			b.ReportMetric(ms(detach)/float64(b.N), "detach-ms")
		})
		b.Run(fmt.Sprintf("N=%d/linked", n), func(b *testing.B) {
			var attach, load, detach time.Duration
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				progs := c.linked(b, false)
				load += time.Since(t0)
				links, err := attachAll(ns, idx[:n], [][]*ebpf.Program{{progs[0]}, {progs[1]}})
				attach += time.Since(t0)
				b.StopTimer()
				t1 := time.Now()
				closeLinks(links)
				detach += time.Since(t1)
				closeProgs(progs)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(ms(attach)/float64(b.N), "attach-ms")
			b.ReportMetric(ms(attach)/float64(b.N*n), "ms/veth")
			b.ReportMetric(ms(load)/float64(b.N), "load-ms")
			b.ReportMetric(ms(detach)/float64(b.N), "detach-ms")
		})
		// The same two ways over legacy tc (clsact + direct-action cls_bpf
		// filters, the eBPF Manager's fallback): a filter costs no RCU wait.
		b.Run(fmt.Sprintf("N=%d/today-legacy", n), func(b *testing.B) {
			progs := c.programs(false)
			var attach, detach time.Duration
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				filters, err := legacyAttachAll(ns, idx[:n], progs)
				attach += time.Since(t0)
				b.StopTimer()
				t1 := time.Now()
				legacyDetachAll(ns, idx[:n])
				detach += time.Since(t1)
				if err != nil {
					b.Fatal(err)
				}
				_ = filters
				b.StartTimer()
			}
			b.ReportMetric(ms(attach)/float64(b.N), "attach-ms")
			b.ReportMetric(ms(attach)/float64(b.N*n), "ms/veth")
			b.ReportMetric(ms(detach)/float64(b.N), "detach-ms")
		})
		b.Run(fmt.Sprintf("N=%d/linked-legacy", n), func(b *testing.B) {
			var attach, load, detach time.Duration
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				progs := c.linked(b, false)
				load += time.Since(t0)
				_, err := legacyAttachAll(ns, idx[:n], [][]*ebpf.Program{{progs[0]}, {progs[1]}})
				attach += time.Since(t0)
				b.StopTimer()
				t1 := time.Now()
				legacyDetachAll(ns, idx[:n])
				detach += time.Since(t1)
				closeProgs(progs)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(ms(attach)/float64(b.N), "attach-ms")
			b.ReportMetric(ms(attach)/float64(b.N*n), "ms/veth")
			b.ReportMetric(ms(load)/float64(b.N), "load-ms")
			b.ReportMetric(ms(detach)/float64(b.N), "detach-ms")
		})
	}
	b.Logf("BenchmarkAttach took %s", time.Since(start).Round(time.Millisecond))
}

// BenchmarkChainChange: with the 3-module chain on N veths, add a fourth
// module (dropmark, both hooks) at the end. Today: 2 more anchored TCX
// attaches per veth. Linked: load the two new combined programs once, then
// link.Update every veth's 2 links (an atomic swap, no RCU wait). ns/op is
// the change alone; setting up and tearing down are not timed.
func BenchmarkChainChange(b *testing.B) {
	start := time.Now()
	c := newChainSet(b)
	ns, idx := veths(b, slices.Max(benchNs))
	for _, n := range benchNs {
		b.Run(fmt.Sprintf("N=%d/today", n), func(b *testing.B) {
			old, added := c.programs(false), c.programs(true)
			extra := [][]*ebpf.Program{added[0][len(old[0]):], added[1][len(old[1]):]}
			var change time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				links, err := attachAll(ns, idx[:n], old)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				t0 := time.Now()
				more, err := attachAll(ns, idx[:n], extra)
				change += time.Since(t0)
				b.StopTimer()
				if err == nil {
					err = checkChain(ns, idx[n-1], ebpf.AttachTCXIngress, added[0])
				}
				closeLinks(more)
				closeLinks(links)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(ms(change)/float64(b.N), "change-ms")
			b.ReportMetric(ms(change)/float64(b.N*n), "ms/veth")
		})
		b.Run(fmt.Sprintf("N=%d/linked", n), func(b *testing.B) {
			var change, load time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				progs := c.linked(b, false)
				links, err := attachAll(ns, idx[:n], [][]*ebpf.Program{{progs[0]}, {progs[1]}})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				t0 := time.Now()
				next := c.linked(b, true)
				load += time.Since(t0)
				for j, ls := range links {
					if err = ls[0].Update(next[j%len(hooks)]); err != nil {
						break
					}
				}
				change += time.Since(t0)
				b.StopTimer()
				if err == nil {
					err = checkChain(ns, idx[n-1], ebpf.AttachTCXIngress, []*ebpf.Program{next[0]})
				}
				closeLinks(links)
				closeProgs(progs)
				closeProgs(next)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(ms(change)/float64(b.N), "change-ms")
			b.ReportMetric(ms(change)/float64(b.N*n), "ms/veth")
			b.ReportMetric(ms(load)/float64(b.N), "load-ms")
		})
		b.Run(fmt.Sprintf("N=%d/today-legacy", n), func(b *testing.B) {
			old, added := c.programs(false), c.programs(true)
			extra := [][]*ebpf.Program{added[0][len(old[0]):], added[1][len(old[1]):]}
			var change time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if _, err := legacyAttachAll(ns, idx[:n], old); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				t0 := time.Now()
				_, err := legacyAdd(ns, idx[:n], extra, []int{len(old[0]), len(old[1])}, false)
				change += time.Since(t0)
				b.StopTimer()
				legacyDetachAll(ns, idx[:n])
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(ms(change)/float64(b.N), "change-ms")
			b.ReportMetric(ms(change)/float64(b.N*n), "ms/veth")
		})
		b.Run(fmt.Sprintf("N=%d/linked-legacy", n), func(b *testing.B) {
			var change, load time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				progs := c.linked(b, false)
				filters, err := legacyAttachAll(ns, idx[:n], [][]*ebpf.Program{{progs[0]}, {progs[1]}})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				t0 := time.Now()
				next := c.linked(b, true)
				load += time.Since(t0)
				err = ns.Do(func() error {
					for j, f := range filters {
						nf := *f
						nf.Fd = next[j%len(hooks)].FD()
						if err := netlink.FilterReplace(&nf); err != nil {
							return err
						}
					}
					return nil
				})
				change += time.Since(t0)
				b.StopTimer()
				legacyDetachAll(ns, idx[:n])
				closeProgs(progs)
				closeProgs(next)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(ms(change)/float64(b.N), "change-ms")
			b.ReportMetric(ms(change)/float64(b.N*n), "ms/veth")
			b.ReportMetric(ms(load)/float64(b.N), "load-ms")
		})
	}
	b.Logf("BenchmarkChainChange took %s", time.Since(start).Round(time.Millisecond))
}

// legacyAttachAll adds a clsact qdisc to every interface and, per hook,
// one direct-action cls_bpf filter per program at ascending priorities (as
// the eBPF Manager's legacy mode does); it runs in ns and returns the
// filters per interface and hook (the first of each).
func legacyAttachAll(ns *nstest.Netns, ifindexes []int, progs [][]*ebpf.Program) ([]*netlink.BpfFilter, error) {
	return legacyAdd(ns, ifindexes, progs, []int{0, 0}, true)
}

// legacyAdd adds the filters of legacyAttachAll, hook h's from priority
// after[h]+1 on, and the clsact qdiscs when qdisc is set.
func legacyAdd(ns *nstest.Netns, ifindexes []int, progs [][]*ebpf.Program, after []int, qdisc bool) ([]*netlink.BpfFilter, error) {
	var out []*netlink.BpfFilter
	err := ns.Do(func() error {
		for _, ifi := range ifindexes {
			if qdisc {
				if err := netlink.QdiscAdd(clsact(ifi)); err != nil {
					return fmt.Errorf("add clsact to ifindex %d: %w", ifi, err)
				}
			}
			for h := range hooks {
				parent := uint32(netlink.HANDLE_MIN_INGRESS)
				if hooks[h].attach == ebpf.AttachTCXEgress {
					parent = netlink.HANDLE_MIN_EGRESS
				}
				for k, p := range progs[h] {
					f := &netlink.BpfFilter{
						FilterAttrs: netlink.FilterAttrs{LinkIndex: ifi, Parent: parent, Handle: 1,
							Priority: uint16(after[h] + k + 1), Protocol: unix.ETH_P_ALL},
						Fd: p.FD(), Name: "nmlinked", DirectAction: true,
					}
					if err := netlink.FilterAdd(f); err != nil {
						return fmt.Errorf("add filter to ifindex %d: %w", ifi, err)
					}
					if k == 0 {
						out = append(out, f)
					}
				}
			}
		}
		return nil
	})
	return out, err
}

// legacyDetachAll deletes the interfaces' clsact qdiscs, filters and all.
func legacyDetachAll(ns *nstest.Netns, ifindexes []int) {
	_ = ns.Do(func() error {
		for _, ifi := range ifindexes {
			_ = netlink.QdiscDel(clsact(ifi))
		}
		return nil
	})
}

func clsact(ifindex int) *netlink.GenericQdisc {
	return &netlink.GenericQdisc{QdiscType: "clsact", QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}}
}

// checkChain says whether the hook of ifindex runs exactly want, in order.
func checkChain(ns *nstest.Netns, ifindex int, at ebpf.AttachType, want []*ebpf.Program) error {
	var got []ebpf.ProgramID
	err := ns.Do(func() error {
		res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: at})
		if err != nil {
			return err
		}
		for _, p := range res.Programs {
			got = append(got, p.ID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var ids []ebpf.ProgramID
	for _, p := range want {
		info, err := p.Info()
		if err != nil {
			return err
		}
		id, _ := info.ID()
		ids = append(ids, id)
	}
	if !slices.Equal(got, ids) {
		return fmt.Errorf("chain on ifindex %d is %v, want %v", ifindex, got, ids)
	}
	return nil
}

// BenchmarkPerPacket compares, through BPF_PROG_TEST_RUN on a 60-byte IPv4
// UDP frame that every module passes on (a non-service destination, no
// firewall rule), the combined program with its parts run one by one and
// with a no-op program (the test-run harness's own cost). Samples of
// `repeat` runs alternate between the programs; for each program the
// figures are the median and the lowest (least disturbed: noise only adds)
// wall time per run. chain-ns subtracts the harness once per program run:
// linked − noop against Σ(part − noop) — which charges the linked program
// its BPF-to-BPF calls but not the parts what TCX spends between programs
// (BenchmarkTraffic measures that).
func BenchmarkPerPacket(b *testing.B) {
	c := newChainSet(b)
	linked := c.linked(b, false)
	defer closeProgs(linked)
	noop := bpftest.Noop(b)
	progs := []*ebpf.Program{noop}
	names := []string{"noop"}
	for _, in := range c.insts {
		progs = append(progs, in.coll.Programs["nm_ingress"])
		names = append(names, in.name)
	}
	nparts := len(c.insts)
	progs = append(progs, linked[0])
	names = append(names, "linked")
	// Three parts that only say next, linked: the cost of the calls alone.
	var noops []Part
	for i := 0; i < 3; i++ {
		noops = append(noops, Part{Name: "noop", Program: noopSpec()})
	}
	calls, err := Load("", noops, ebpf.ProgramOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer calls.Close()
	progs = append(progs, calls)
	names = append(names, "linked-3-noops")
	frame := udpFrame(b, 0)
	const repeat, rounds = 20000, 75
	b.Logf("load average at start: %s", loadavg())
	samples := make([][]float64, len(progs))
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			for j, p := range progs {
				t0 := time.Now()
				ret, _, err := p.Benchmark(frame, repeat, nil)
				d := time.Since(t0)
				if err != nil {
					b.Fatal(err)
				}
				if int32(ret) != Next {
					b.Fatalf("%s: verdict %s, want next", names[j], bpftest.Verdict(int32(ret)))
				}
				samples[j] = append(samples[j], float64(d.Nanoseconds())/repeat)
			}
		}
	}
	for _, stat := range []struct {
		name string
		f    func([]float64) float64
	}{{"med", median}, {"min", slices.Min[[]float64]}} {
		v := make([]float64, len(progs))
		for j := range progs {
			v[j] = stat.f(samples[j])
			b.ReportMetric(v[j], names[j]+"-"+stat.name+"-ns")
		}
		var sum, sumChain float64
		for j := 1; j <= nparts; j++ {
			sum += v[j]
			sumChain += v[j] - v[0]
		}
		linkedChain := v[nparts+1] - v[0]
		b.ReportMetric(linkedChain/sumChain, "linked/parts-"+stat.name)
		b.Logf("per packet, %s of %d samples of %d runs: noop %.1f ns; %s; Σparts %.1f ns; linked %.1f ns; chain without the harness: Σ(part−noop) %.1f ns, linked−noop %.1f ns (%.3f×); 3 linked no-op parts %.1f ns (%.1f ns per call)",
			stat.name, rounds*b.N, repeat, v[0], partsLine(names[1:nparts+1], v[1:nparts+1]), sum, v[nparts+1], sumChain, linkedChain, linkedChain/sumChain,
			v[nparts+2], (v[nparts+2]-v[0])/3)
	}
	b.Logf("load average at the end: %s", loadavg())
}

func partsLine(names []string, v []float64) string {
	var s []string
	for i := range names {
		s = append(s, fmt.Sprintf("%s %.1f ns", names[i], v[i]))
	}
	return strings.Join(s, ", ")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
