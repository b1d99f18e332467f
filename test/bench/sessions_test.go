package bench

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/oakestra/netmanager/test/nstest"
)

const (
	connRounds  = 5                         // samples per path, alternating
	connSample  = 2 * time.Second           // each sample's length
	connWorkers = 4                         // dialers at once
	connProxy   = `{"maxSessions": 262144}` // room for every sample's flows: a reused source port finds its flow's sessions
)

// BenchmarkServiceConnRate runs once (-benchtime 1x): new TCP connections
// per second from a client service to a server service on one node,
// direct (the server's namespace IP) and through the eBPF proxy (its
// round-robin service IP), connRounds samples each, alternating so the
// machine's noise falls on both alike. connWorkers dialers connect, and
// close at once with a reset (SO_LINGER 0: no TIME_WAIT, so the client's
// ports last; a port used again finds its flow's sessions); the server
// accepts and closes. The kernel must have translated at least three
// packets of every connection of an eBPF sample, and passed none to the
// user-space proxy. Goal: eBPF ≥ 0.9× direct.
func BenchmarkServiceConnRate(b *testing.B) {
	nstest.RequireRoot()
	n := newNode(b)
	client, server := nstest.NewNetns(b, "nm-bench-c"), nstest.NewNetns(b, "nm-bench-s")
	n.deploy(b, client.StartProcess(b), "conn.ns.client.ns")
	rs := n.deploy(b, server.StartProcess(b), "conn.ns.server.ns")
	rr, _ := n.serviceIP(b, "conn.ns.server.ns")
	ln := listenIn(b, server, ":7000")
	defer ln.Close()
	var info struct{ ID string }
	if err := n.d.Client.Do(b.Context(), http.MethodPost, "/ebpf", map[string]any{"name": "proxy", "config": rawJSON(connProxy)}, &info); err != nil {
		b.Fatalf("load the proxy: %v", err)
	}
	direct, viaProxy := net.JoinHostPort(rs.NsAddress, "7000"), net.JoinHostPort(rr, "7000")
	var d, e []float64
	for i := range connRounds {
		d = append(d, dialRate(b, client, direct))
		before := n.proxyStats(b, info.ID)
		rate := dialRate(b, client, viaProxy)
		after := n.proxyStats(b, info.ID)
		translated := after["newSessions"] + after["hits"] - before["newSessions"] - before["hits"]
		passed := after["passedToUserspace"] - before["passedToUserspace"]
		if conns := rate * connSample.Seconds(); passed != 0 || float64(translated) < 3*conns { // SYN, SYN-ACK, ACK, RST at least
			b.Fatalf("round %d: %.0f connections through %s, but %d packets translated and %d passed to user space", i, conns, viaProxy, translated, passed)
		}
		e = append(e, rate)
	}
	b.Logf("new TCP connections/s, direct %.0f, eBPF proxy %.0f", d, e)
	b.Logf("medians: direct %.0f/s, eBPF proxy %.0f/s, ratio %.2f (goal ≥ 0.9)", median(d), median(e), median(e)/median(d))
	b.ReportMetric(median(d), "direct-conn/s")
	b.ReportMetric(median(e), "ebpf-conn/s")
	b.ReportMetric(median(e)/median(d), "ebpf/direct")
}

type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

// dialRate connects to addr from ns with connWorkers dialers for
// connSample and returns the connections per second they completed; any
// failure fails the benchmark.
func dialRate(b *testing.B, ns *nstest.Netns, addr string) float64 {
	var wg sync.WaitGroup
	counts, errs := make([]int, connWorkers), make([]error, connWorkers)
	start := time.Now()
	for w := range connWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = ns.Do(func() error {
				for time.Since(start) < connSample {
					c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
					if err != nil {
						return fmt.Errorf("connect %d to %s: %w", counts[w], addr, err)
					}
					_ = c.(*net.TCPConn).SetLinger(0)
					c.Close()
					counts[w]++
				}
				return nil
			})
		}()
	}
	wg.Wait()
	el := time.Since(start)
	total := 0
	for w := range connWorkers {
		if errs[w] != nil {
			b.Fatal(errs[w])
		}
		total += counts[w]
	}
	return float64(total) / el.Seconds()
}

// proxyStats is the proxy instance's GET /ebpf/{id}/stats.
func (n *node) proxyStats(b *testing.B, id string) map[string]uint64 {
	var m map[string]uint64
	if err := n.d.Client.Do(b.Context(), http.MethodGet, "/ebpf/"+id+"/stats", nil, &m); err != nil {
		b.Fatalf("proxy stats: %v", err)
	}
	return m
}
