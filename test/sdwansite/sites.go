package sdwansite

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/oakestra/netmanager/modules/sdwan/sdwanpb"
	"github.com/oakestra/netmanager/test/nstest"
)

// Site is one SD-WAN gateway: a NetManager in its node namespace with the
// LAN veth sdlan (LAN.0.1/24) to its host (LAN.0.5) and the WAN veths
// sdwan1 and sdwan2 to the other site.
type Site struct {
	Node   *nstest.Netns
	Daemon *nstest.Daemon
	Host   *nstest.Netns
	ID     string // the sdwan instance, once loaded
	LAN    string // "10.1" (site A) or "10.2" (site B)
	remote string // the other site's LAN prefix
	peers  [2]string
}

// Options says how to start the daemons.
type Options struct {
	Netmanager string // the daemon's binary
	ModulesDir string
}

// WAN 1 and WAN 2: site A's address, site B's, on a /30.
var wanLinks = []struct{ name, a, b string }{{"sdwan1", "192.0.2.1", "192.0.2.2"}, {"sdwan2", "198.51.100.1", "198.51.100.2"}}

// Wire builds both sites (namespaces, links, daemons) without loading the
// module. Site A's LAN is 10.1.0.0/24, site B's 10.2.0.0/24; WAN 1 is
// 192.0.2.0/30, WAN 2 198.51.100.0/30 limited to 200 Mbit/s by tbf.
func Wire(tb testing.TB, o Options) (a, b *Site) {
	tb.Helper()
	a = &Site{LAN: "10.1", remote: "10.2.0.0/16", peers: [2]string{wanLinks[0].b, wanLinks[1].b}}
	b = &Site{LAN: "10.2", remote: "10.1.0.0/16", peers: [2]string{wanLinks[0].a, wanLinks[1].a}}
	for _, s := range []*Site{a, b} {
		s.Node, s.Host = nstest.NewNetns(tb, "sd-node"), nstest.NewNetns(tb, "sd-host")
		nstest.Run(tb, "ip", "link", "add", "sdlan", "netns", s.Node.Name, "type", "veth", "peer", "name", "eth0", "netns", s.Host.Name)
		s.Node.MustExec(tb, "ip", "addr", "add", s.LAN+".0.1/24", "dev", "sdlan")
		s.Node.MustExec(tb, "ip", "link", "set", "sdlan", "up")
		s.Host.MustExec(tb, "ip", "addr", "add", s.LAN+".0.5/24", "dev", "eth0")
		s.Host.MustExec(tb, "ip", "link", "set", "eth0", "up")
		s.Host.MustExec(tb, "ip", "route", "add", "default", "via", s.LAN+".0.1")
	}
	for i, w := range wanLinks {
		nstest.Run(tb, "ip", "link", "add", w.name, "netns", a.Node.Name, "type", "veth", "peer", "name", w.name, "netns", b.Node.Name)
		for _, e := range []struct {
			ns   *nstest.Netns
			addr string
		}{{a.Node, w.a}, {b.Node, w.b}} {
			e.ns.MustExec(tb, "ip", "addr", "add", e.addr+"/30", "dev", w.name)
			e.ns.MustExec(tb, "ip", "link", "set", w.name, "up")
			if i == 1 {
				e.ns.MustExec(tb, "tc", "qdisc", "add", "dev", w.name, "root", "tbf", "rate", "200mbit", "burst", "256kb", "latency", "50ms")
			}
		}
	}
	for _, s := range []*Site{a, b} {
		s.Daemon = nstest.StartDaemon(tb, o.Netmanager, s.Node, "--modules-dir", o.ModulesDir)
	}
	return a, b
}

// New wires both sites, loads the module on each with Config(DefaultHealth)
// and waits until both see both WANs up.
func New(tb testing.TB, o Options) (a, b *Site) {
	tb.Helper()
	a, b = Wire(tb, o)
	a.Load(tb, a.Config(DefaultHealth))
	b.Load(tb, b.Config(DefaultHealth))
	WaitUp(tb, a, b)
	return a, b
}

// WaitUp waits until every WAN of the sites is up with probes answered: a
// site probes its peer before the peer's module is loaded and, on a loaded
// machine, can mark a WAN down for a moment; it is up again after upAfter
// answers.
func WaitUp(tb testing.TB, sites ...*Site) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		up := true
		for _, s := range sites {
			for _, w := range s.WANs(tb) {
				up = up && w.Up && w.ProbesAnswered > 0
			}
		}
		if up {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the sites' WANs are not all up with probes answered after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// DefaultHealth probes every 50 ms and marks a WAN down after three probes
// unanswered for 150 ms.
const DefaultHealth = `{"interval": "50ms", "timeout": "150ms", "downAfter": 3, "upAfter": 3}`

// Config is the site's module config: rule 1 sends the other site's prefix
// to the LBR; the default class goes over WAN 1, ToS 0x20 over WAN 2.
func (s *Site) Config(health string) string {
	return fmt.Sprintf(`{"lan": ["sdlan"],
  "wans": [{"name": "wan1", "interface": "sdwan1", "peer": %q}, {"name": "wan2", "interface": "sdwan2", "peer": %q}],
  "rules": [{"id": 1, "precedence": 10, "dst": %q, "action": "redirect", "target": "lbr"}],
  "lbr": [{"default": true, "overlays": [{"wan": "wan1", "weight": 1}]}, {"tos": 32, "overlays": [{"wan": "wan2", "weight": 1}]}],
  "health": %s}`, s.peers[0], s.peers[1], s.remote, health)
}

// LoadRequest is the POST /ebpf body that loads the module with config.
func LoadRequest(config string) []byte {
	return fmt.Appendf(nil, `{"name": "sdwan", "priority": 10, "interfaces": ["sdlan", "sdwan1", "sdwan2"], "config": %s}`, config)
}

// Load starts the sdwan module on the site's gateway and records its ID.
func (s *Site) Load(tb testing.TB, config string) string {
	tb.Helper()
	code, out, err := s.Daemon.Client.Raw(ctx(tb), "POST", "/ebpf", LoadRequest(config))
	if err != nil || code != 200 {
		tb.Fatalf("load sdwan: %d %s %v", code, out, err)
	}
	var info struct{ ID string }
	if err := json.Unmarshal(out, &info); err != nil {
		tb.Fatal(err)
	}
	s.ID = info.ID
	return s.ID
}

// WANStat is one WAN in GET /ebpf/{id}/wans.
type WANStat struct {
	Name      string `json:"name"`
	Up        bool   `json:"up"`
	TxPackets uint64 `json:"txPackets"`
	TxBytes   uint64 `json:"txBytes"`
	RxPackets uint64 `json:"rxPackets"`
	// ProbesAnswered counts the health probes the peer answered.
	ProbesAnswered uint64 `json:"probesAnswered"`
}

// WANs reads the gateway's per-WAN state by name.
func (s *Site) WANs(tb testing.TB) map[string]WANStat {
	tb.Helper()
	var ws []WANStat
	if err := s.Daemon.Client.Do(ctx(tb), "GET", "/ebpf/"+s.ID+"/wans", nil, &ws); err != nil {
		tb.Fatal(err)
	}
	out := map[string]WANStat{}
	for _, w := range ws {
		out[w.Name] = w
	}
	return out
}

// Gateway dials the site's gRPC server inside its node namespace.
func (s *Site) Gateway(tb testing.TB) pb.GatewayClient {
	tb.Helper()
	dial := func(ctx context.Context, addr string) (c net.Conn, err error) {
		err = s.Node.Do(func() error {
			var d net.Dialer
			c, err = d.DialContext(ctx, "tcp", addr)
			return err
		})
		return c, err
	}
	conn, err := grpc.NewClient("passthrough:///127.0.0.1:50051", grpc.WithContextDialer(dial),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return pb.NewGatewayClient(conn)
}

// ServeIperf runs an iperf3 server in the site's host until the test ends.
func (s *Site) ServeIperf(tb testing.TB) {
	tb.Helper()
	srv := exec.Command("ip", "netns", "exec", s.Host.Name, "iperf3", "-s")
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	time.Sleep(200 * time.Millisecond)
}

// Iperf runs an iperf3 client (JSON output) from the site's host to the
// other site's host.
func (s *Site) Iperf(args ...string) (string, error) {
	return s.Host.Exec(append([]string{"iperf3", "-c", s.OtherHost(), "-J"}, args...)...)
}

// OtherHost is the other site's LAN host.
func (s *Site) OtherHost() string {
	if s.LAN == "10.1" {
		return "10.2.0.5"
	}
	return "10.1.0.5"
}

func ctx(tb testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	return c
}
