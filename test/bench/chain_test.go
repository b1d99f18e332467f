package bench

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/test/bpftest"
	"github.com/oakestra/netmanager/test/nstest"
)

const (
	chainRounds = 4
	chainSample = time.Second
)

// chainRates are the UDP packet rates of the stats samples: sparse (the
// CPU idles between packets) and about as fast as one Go sender goes here.
var chainRates = []int{20000, 100000}

// chainBench is BenchmarkChain's node: a client and a server service, a
// UDP flow from the client to the server's round-robin service IP, the
// client's host veth (where the chain runs on the flow's packets).
type chainBench struct {
	*node
	client, server   *nstest.Netns
	clientIP         string
	serverIP, svcIP  string
	veth             int
	flow             net.Conn
	noop             *ebpf.Program
	res              ChainResult
	bare, px, chainT Result
}

// BenchmarkChain runs once (-benchtime 1x) and writes the markdown section
// $BENCH_CHAIN_OUT (and its JSON beside it): the packet counter, the
// firewall with 100 rules and the eBPF proxy chained on the service veths
// by a real NetManager, each program's ns/packet from the kernel's BPF
// run-time statistics under live UDP traffic, in the chain and each module
// alone; and iperf3 TCP throughput bare, through the proxy alone and
// through the chain. The configurations alternate round by round.
func BenchmarkChain(b *testing.B) {
	nstest.RequireRoot()
	out := os.Getenv("BENCH_CHAIN_OUT")
	if out == "" {
		b.Fatal("BENCH_CHAIN_OUT must name the markdown file to write (make bench sets it)")
	}
	c := newChainBench(b)
	for r := 0; r < chainRounds; r++ {
		c.round(b)
	}
	c.testRuns(b)
	c.unloadAll(b)
	c.res.Paths = []Result{c.bare, c.px, c.chainT}
	md := RenderChain(c.res)
	data, _ := json.MarshalIndent(c.res, "", "  ")
	if err := os.WriteFile(strings.TrimSuffix(out, ".md")+".json", data, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		b.Fatal(err)
	}
	os.Stdout.WriteString(md)
	for _, rc := range c.res.Rates {
		chain, alone := rc.Sums()
		b.ReportMetric(chain/alone, fmt.Sprintf("chain/alone@%dpps", rc.TargetPPS))
	}
}

func newChainBench(b *testing.B) *chainBench {
	c := &chainBench{node: newNode(b), noop: bpftest.Noop(b)}
	c.res = ChainResult{SampleSec: chainSample.Seconds(), Rules: len(benchRules()), TestRunNs: map[string]float64{}}
	for _, r := range chainRates {
		rc := RateCost{TargetPPS: r}
		for _, m := range ChainModules {
			rc.Progs = append(rc.Progs, ProgCost{Module: m})
		}
		c.res.Rates = append(c.res.Rates, rc)
	}
	c.client, c.server = nstest.NewNetns(b, "nm-bench-c"), nstest.NewNetns(b, "nm-bench-s")
	c.clientIP = c.deploy(b, c.client.StartProcess(b), "bench.ns.client.ns").NsAddress
	c.serverIP = c.deploy(b, c.server.StartProcess(b), "bench.ns.server.ns").NsAddress
	c.svcIP, _ = c.serviceIP(b, "bench.ns.server.ns")
	// Without the proxy the flow would go on to the user-space proxy (and
	// load the machine while a module alone is measured): the node drops
	// it right after the TC hook instead. With the proxy it never gets
	// there: the proxy redirects it from the hook into the server.
	c.ns.MustExec(b, "iptables", "-t", "raw", "-I", "PREROUTING", "-p", "udp", "-d", c.svcIP, "--dport", "7000", "-j", "DROP")
	_, rec := c.serviceIP(b, "bench.ns.client.ns")
	c.veth = rec.HostIfindex
	var sink net.PacketConn
	if err := c.server.Do(func() (err error) { sink, err = net.ListenPacket("udp4", ":7000"); return }); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := sink.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	if err := c.client.Do(func() (err error) { c.flow, err = net.Dial("udp4", net.JoinHostPort(c.svcIP, "7000")); return }); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.flow.Close() })
	iperfd := exec.Command("ip", "netns", "exec", c.server.Name, "iperf3", "-s")
	if err := iperfd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = iperfd.Process.Kill(); _ = iperfd.Wait() })
	time.Sleep(300 * time.Millisecond)
	c.bare = Result{Path: "bare: no module, namespace IP", Address: c.serverIP}
	c.px = Result{Path: "eBPF proxy alone, service IP", Address: c.svcIP}
	c.chainT = Result{Path: "packetcounter → firewall → proxy, service IP", Address: c.svcIP}
	return c
}

// round measures every configuration once: bare throughput; a no-op
// alone, the proxy alone (and its throughput), the packet counter alone,
// the firewall alone; the chain (and its throughput).
func (c *chainBench) round(b *testing.B) {
	c.bare.ThroughputGbs = append(c.bare.ThroughputGbs, iperfTCP(b, c.client, c.serverIP))
	var l link.Link
	err := c.ns.Do(func() (err error) {
		l, err = link.AttachTCX(link.TCXOptions{Interface: c.veth, Program: c.noop, Attach: ebpf.AttachTCXIngress})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	c.sample(b, []*ebpf.Program{c.noop}, func(rc *RateCost, ns []float64, _ []uint64) { rc.NoopNs = append(rc.NoopNs, ns[0]) })
	_ = l.Close()
	for _, m := range []string{"proxy", "packetcounter", "firewall"} {
		i := slices.Index(ChainModules, m)
		progs := c.ingressPrograms(b, c.veth, c.load(b, m))
		c.sample(b, progs, func(rc *RateCost, ns []float64, _ []uint64) {
			rc.Progs[i].AloneNs = append(rc.Progs[i].AloneNs, ns[0])
		})
		closeAll(progs)
		if m == "proxy" {
			c.px.ThroughputGbs = append(c.px.ThroughputGbs, iperfTCP(b, c.client, c.svcIP))
		}
		c.unloadAll(b)
	}
	progs := c.ingressPrograms(b, c.veth, c.load(b, ChainModules...))
	c.sample(b, progs, func(rc *RateCost, ns []float64, runs []uint64) {
		for i := range ns {
			rc.Progs[i].ChainNs = append(rc.Progs[i].ChainNs, ns[i])
		}
		rc.Runs = append(rc.Runs, runs[0])
	})
	closeAll(progs)
	c.chainT.ThroughputGbs = append(c.chainT.ThroughputGbs, iperfTCP(b, c.client, c.svcIP))
	c.unloadAll(b)
}

func closeAll(progs []*ebpf.Program) {
	for _, p := range progs {
		p.Close()
	}
}

// sample sends the UDP flow for chainSample at each of chainRates with the
// kernel's run-time stats on and hands each rate's ns/packet and runs of
// progs (the programs on the client veth's ingress, in order) to put.
func (c *chainBench) sample(b *testing.B, progs []*ebpf.Program, put func(*RateCost, []float64, []uint64)) {
	pace(c.flow, 1000, 100*time.Millisecond) // the proxy's session, the firewall's flow: made before the sample
	for i, rate := range chainRates {
		var sent int
		ns, runs := runStats(b, progs, func() { sent = pace(c.flow, rate, chainSample) })
		for j, n := range runs {
			if n < uint64(sent)*9/10 {
				b.Fatalf("program %d ran %d times for %d packets sent", j, n, sent)
			}
		}
		put(&c.res.Rates[i], ns, runs)
	}
}

// testRuns loads the chain once more and runs each of its live programs,
// with its live maps, through BPF_PROG_TEST_RUN on a copy of the flow's
// packet (one repeat per run: the proxy rewrites it), beside a no-op.
func (c *chainBench) testRuns(b *testing.B) {
	ids := c.load(b, ChainModules...)
	progs := c.ingressPrograms(b, c.veth, ids)
	pace(c.flow, 1000, 100*time.Millisecond)
	port := uint16(c.flow.LocalAddr().(*net.UDPAddr).Port)
	frame := bpftest.Serialize(b, bpftest.Eth(layers.EthernetTypeIPv4), bpftest.IPv4(c.clientIP, c.svcIP, layers.IPProtocolUDP),
		bpftest.UDP(port, 7000), bpftest.Payload(make([]byte, 18)))
	const n = 20000
	c.res.TestRunNs["noop"] = testRunNs(b, c.ns, c.noop, frame, -1, n)
	for i, m := range ChainModules {
		want := int32(-1) // next
		if m == "proxy" {
			want = 7 // a session hit: redirected to the server
		}
		c.res.TestRunNs[m] = testRunNs(b, c.ns, progs[i], frame, want, n)
		progs[i].Close()
	}
}
