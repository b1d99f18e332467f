package bench

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/test/nstest"
)

const (
	nftRounds = 5
	nftSample = time.Second
)

var nftRuleCounts = []int{10, 100, 1000}

// nftBench is BenchmarkFirewallVsNftables' node: a client and a server
// service on the node bridge, traffic between their namespace IPs.
type nftBench struct {
	*node
	client, server *nstest.Netns
	serverIP       string
	serverPID      int
	table          string // the nft table's name in the node namespace
	res            NftResult
}

// BenchmarkFirewallVsNftables runs once (-benchtime 1x) and writes the
// markdown table to $BENCH_NFT_OUT when set (and its JSON beside it): one
// service path (client and server services of a real NetManager, the
// server's namespace IP over the node bridge) with no filter, with the
// firewall module on the server's veth and with nftables with conntrack
// in the node namespace's forward hook (the bridge hands bridged IP
// packets to it: bridge-nf-call-iptables), the same rule sets of 10, 100
// and 1000 rules under a default deny. Metrics: UDP 64 B packets per
// second received, iperf3 TCP Gbit/s, TCP connections per second. The
// variants alternate round by round: $BENCH_NFT_ROUNDS rounds (default 5).
func BenchmarkFirewallVsNftables(b *testing.B) {
	nstest.RequireRoot()
	if _, err := exec.LookPath("nft"); err != nil {
		b.Fatal("nft not found: make deps installs nftables")
	}
	c := newNftBench(b)
	for _, n := range nftRuleCounts {
		for _, v := range NftVariants {
			c.res.Samples = append(c.res.Samples, NftSample{Variant: v, Rules: n})
		}
	}
	c.res.Rounds = nftRounds
	if v, err := strconv.Atoi(os.Getenv("BENCH_NFT_ROUNDS")); err == nil && v > 0 {
		c.res.Rounds = v
	}
	for r := 0; r < c.res.Rounds; r++ {
		for i := range nftRuleCounts {
			for k := range NftVariants {
				j := (k + r) % len(NftVariants) // each round starts with the next variant
				c.measure(b, &c.res.Samples[i*len(NftVariants)+j])
			}
		}
	}
	md := RenderNft(c.res)
	os.Stdout.WriteString(md)
	if out := os.Getenv("BENCH_NFT_OUT"); out != "" {
		data, _ := json.MarshalIndent(c.res, "", "  ")
		if err := os.WriteFile(strings.TrimSuffix(out, ".md")+".json", data, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for _, s := range c.res.Samples {
		b.ReportMetric(median(s.PPS), fmt.Sprintf("%s-%d-pkts/s", s.Variant, s.Rules))
	}
}

func newNftBench(b *testing.B) *nftBench {
	c := &nftBench{node: newNode(b)}
	c.table = strings.ReplaceAll(nstest.UniqueName("nm_bench_nft"), "-", "_")
	c.client, c.server = nstest.NewNetns(b, "nm-bench-c"), nstest.NewNetns(b, "nm-bench-s")
	c.deploy(b, c.client.StartProcess(b), "bench.ns.client.ns")
	c.serverPID = c.server.StartProcess(b)
	c.serverIP = c.deploy(b, c.serverPID, "bench.ns.server.ns").NsAddress
	// Short connections, many of them: the client's TIME_WAIT sockets
	// must not run out of ports.
	c.client.MustExec(b, "sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1")
	if v := strings.TrimSpace(c.ns.MustExec(b, "sysctl", "-n", "net.bridge.bridge-nf-call-iptables")); v != "1" {
		b.Fatalf("net.bridge.bridge-nf-call-iptables is %s in the node namespace: nftables would not see bridged packets", v)
	}
	// Whatever else hooks the node namespace's netfilter (the daemon's own
	// rules) is there for every variant alike.
	b.Logf("netfilter tables in the node namespace before the benchmark's: %q", c.ns.MustExec(b, "nft", "list", "tables"))
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
	ln := listenIn(b, c.server, ":7000")
	b.Cleanup(func() { ln.Close() })
	iperfd := exec.Command("ip", "netns", "exec", c.server.Name, "iperf3", "-s")
	if err := iperfd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = iperfd.Process.Kill(); _ = iperfd.Wait() })
	time.Sleep(300 * time.Millisecond)
	return c
}

// measure sets up s's filter, takes one sample of each metric, checks the
// filter saw the traffic and removes it.
func (c *nftBench) measure(b *testing.B, s *NftSample) {
	var check func()
	switch s.Variant {
	case "firewall":
		var info struct{ ID string }
		body := map[string]any{"name": "firewall", "services": []string{"bench.ns.server.ns"},
			"config": map[string]any{"defaultPolicy": "deny", "rules": FirewallRules(s.Rules)}}
		if err := c.d.Client.Do(b.Context(), http.MethodPost, "/ebpf", body, &info); err != nil {
			b.Fatalf("load firewall with %d rules: %v", s.Rules, err)
		}
		defer c.unloadAll(b)
		check = func() { c.firewallHits(b, info.ID) }
	case "nftables":
		c.nftLoad(b, s.Rules)
		defer c.ns.MustExec(b, "nft", "delete", "table", "inet", c.table)
		check = func() { c.nftHits(b) }
	}
	s.PPS = append(s.PPS, c.udpRate(b))
	s.Gbits = append(s.Gbits, iperfTCP(b, c.client, c.serverIP))
	s.ConnPerSec = append(s.ConnPerSec, c.connRate(b))
	if check != nil {
		check()
	}
	c.checkDeny(b, s.Variant != "none")
	b.Logf("%s, %d rules: %.0f pkts/s, %.2f Gbit/s, %.0f conn/s", s.Variant, s.Rules,
		s.PPS[len(s.PPS)-1], s.Gbits[len(s.Gbits)-1], s.ConnPerSec[len(s.ConnPerSec)-1])
}

func (c *nftBench) nftLoad(b *testing.B, n int) {
	f, err := os.CreateTemp(b.TempDir(), "rules-*.nft")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.WriteString(NftScript(c.table, n)); err != nil {
		b.Fatal(err)
	}
	f.Close()
	c.ns.MustExec(b, "nft", "-f", f.Name())
}

// nftHits fails unless every allow rule of the table counted packets.
func (c *nftBench) nftHits(b *testing.B) {
	out := c.ns.MustExec(b, "nft", "list", "table", "inet", c.table)
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "counter packets 0 ") {
			b.Fatalf("nft rule %q saw no packet", strings.TrimSpace(l))
		}
	}
}

// firewallHits fails unless every allow rule of the firewall decided packets.
func (c *nftBench) firewallHits(b *testing.B, id string) {
	var rules []struct {
		ID   string
		Hits uint64
	}
	if err := c.d.Client.Do(b.Context(), http.MethodGet, "/ebpf/"+id+"/rules", nil, &rules); err != nil {
		b.Fatal(err)
	}
	for _, r := range rules {
		if strings.HasPrefix(r.ID, "allow-") && r.Hits == 0 {
			b.Fatalf("firewall rule %s saw no packet", r.ID)
		}
	}
}

// checkDeny sends 50 datagrams from the client to the server's port 7001,
// which no rule allows and nothing listens on, and fails unless the
// server's UDP layer saw none of them (the default deny works) when
// filtered, or some (the check can tell; its port unreachable makes the
// client's later writes fail) when not.
func (c *nftBench) checkDeny(b *testing.B, filtered bool) {
	var conn net.Conn
	if err := c.client.Do(func() (err error) { conn, err = net.Dial("udp4", net.JoinHostPort(c.serverIP, "7001")); return }); err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	n0, err := udpCounters(c.serverPID, "NoPorts")
	if err != nil {
		b.Fatal(err)
	}
	sent := pace(conn, 1000, 50*time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	n1, err := udpCounters(c.serverPID, "NoPorts")
	if err != nil {
		b.Fatal(err)
	}
	if got := n1 - n0; (filtered && got != 0) || (!filtered && got == 0) {
		b.Fatalf("filtered %v: %d of %d datagrams to a denied port reached the server", filtered, got, sent)
	}
}

// udpRate sends 18-byte datagrams (64 B frames with the FCS) from the
// client to the server's port 7000 as fast as one sender with sendmmsg
// goes for nftSample and returns how many per second reached the
// server's UDP layer (udpPassed).
func (c *nftBench) udpRate(b *testing.B) float64 {
	var conn net.Conn
	if err := c.client.Do(func() (err error) { conn, err = net.Dial("udp4", net.JoinHostPort(c.serverIP, "7000")); return }); err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	pace(conn, 1000, 50*time.Millisecond) // the flow's first packets: conntrack entry, firewall state
	time.Sleep(50 * time.Millisecond)
	got0, err := udpPassed(c.serverPID)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	sent, err := blastUDP(conn.(*net.UDPConn), make([]byte, 18), nftSample)
	el := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // what is still queued
	got1, err := udpPassed(c.serverPID)
	if err != nil {
		b.Fatal(err)
	}
	n := got1 - got0
	if n == 0 {
		b.Fatalf("none of %d UDP datagrams reached the server", sent)
	}
	return float64(n) / el.Seconds()
}

// connRate opens and closes TCP connections from the client to the
// server's port 7000, one after the other, for nftSample and returns how
// many per second it completed.
func (c *nftBench) connRate(b *testing.B) float64 {
	addr := net.JoinHostPort(c.serverIP, "7000")
	var n int
	var el time.Duration
	err := c.client.Do(func() error {
		start := time.Now()
		for el = 0; el < nftSample; el = time.Since(start) {
			conn, err := net.DialTimeout("tcp4", addr, 2*time.Second)
			if err != nil {
				return fmt.Errorf("connect %d to %s: %w", n, addr, err)
			}
			conn.Close()
			n++
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return float64(n) / el.Seconds()
}
