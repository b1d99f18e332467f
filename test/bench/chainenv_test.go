package bench

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/oakestra/netmanager/ebpfManager/kernel"
	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/table"
	"github.com/oakestra/netmanager/test/nstest"
)

// modulesDir is the module directory for the daemon under test: beside
// $NETMANAGER_BIN's bin/ when it has one (make builds the daemon and the
// modules into one BUILD directory, and the plugins must match the daemon's
// build), else the checkout's build/modules.
func modulesDir(root string) string {
	if nm := os.Getenv("NETMANAGER_BIN"); nm != "" {
		d := filepath.Join(filepath.Dir(filepath.Dir(nm)), "modules")
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
	}
	return filepath.Join(root, "build", "modules")
}

// node is a NetManager in a node namespace of its own.
type node struct {
	d  *nstest.Daemon
	ns *nstest.Netns
}

func newNode(b *testing.B) *node { return newNodeArgs(b) }

// newNodeArgs is newNode with more daemon flags.
func newNodeArgs(b *testing.B, args ...string) *node {
	nm := bin(b, "NETMANAGER_BIN", "github.com/oakestra/netmanager/node-net-manager/cmd/netmanager")
	root, _ := filepath.Abs("../..")
	n := &node{ns: nstest.NewNetns(b, "nm-bench-node")}
	n.d = nstest.StartDaemon(b, nm, n.ns, append([]string{"--modules-dir", modulesDir(root), "--log-level", "info"}, args...)...)
	return n
}

// deploy deploys the container whose main process is pid as service name.
func (n *node) deploy(b *testing.B, pid int, name string) api.DeployResponse {
	inst := 0
	r, err := n.d.Client.Deploy(b.Context(), deploy.KindContainer, api.DeployBody{PID: &pid, ServiceName: name, InstanceNumber: &inst})
	if err != nil {
		b.Fatalf("deploy %s: %v", name, err)
	}
	return r
}

func (n *node) undeploy(b *testing.B, name string) {
	if err := n.d.Client.Undeploy(b.Context(), deploy.KindContainer, name, 0); err != nil {
		b.Fatalf("undeploy %s: %v", name, err)
	}
}

// loadBody is the load request of one of ChainModules, as its README
// gives it, with the chain's priorities: packetcounter 10, firewall 20
// (benchRules), proxy 30 (last: its redirect ends the chain).
func loadBody(name string) map[string]any {
	switch name {
	case "packetcounter":
		return map[string]any{"name": name, "priority": 10}
	case "firewall":
		return map[string]any{"name": name, "priority": 20, "config": map[string]any{"defaultPolicy": "deny", "rules": benchRules()}}
	}
	return map[string]any{"name": name, "priority": 30}
}

// load loads the named modules, in that order, and returns their ids.
func (n *node) load(b *testing.B, names ...string) []string {
	var ids []string
	for _, name := range names {
		var info struct{ ID string }
		if err := n.d.Client.Do(b.Context(), http.MethodPost, "/ebpf", loadBody(name), &info); err != nil {
			b.Fatalf("load %s: %v", name, err)
		}
		ids = append(ids, info.ID)
	}
	return ids
}

func (n *node) unloadAll(b *testing.B) {
	if _, err := n.d.Client.Send(b.Context(), http.MethodDelete, "/ebpf", nil); err != nil {
		b.Fatalf("unload all: %v", err)
	}
}

// benchRules is a firewall rule set of 100: 99 that the benchmark's
// traffic (UDP to port 7000, iperf3 TCP to 5201, IPv4 from 10.x service
// addresses) never matches — denied and allowed prefixes of both families,
// well-known ports and port ranges, protocols, directions — and a final
// allow-all (priority 1000) that it matches, under a default deny.
func benchRules() []map[string]any {
	ports := []string{"22", "23", "25", "53", "111", "135", "139", "445", "1433", "1521", "2049", "3306", "3389",
		"5432", "5900-5910", "6379", "8080-8089", "9200", "11211", "27017"}
	var rs []map[string]any
	for i := 0; len(rs) < 99; i++ {
		var r map[string]any
		switch i % 5 {
		case 0:
			r = map[string]any{"action": "deny", "direction": "egress", "dst": fmt.Sprintf("172.16.%d.0/24", i), "proto": "tcp"}
		case 1:
			r = map[string]any{"action": "deny", "direction": "ingress", "src": fmt.Sprintf("192.0.2.%d", i), "proto": "udp", "dstPorts": "5000-5999"}
		case 2:
			r = map[string]any{"action": "deny", "proto": "tcp", "dstPorts": ports[(i/5)%len(ports)]}
		case 3:
			r = map[string]any{"action": "allow", "direction": "ingress", "src": fmt.Sprintf("198.51.%d.0/24", i), "proto": "tcp", "dstPorts": "8000-8099"}
		default:
			r = map[string]any{"action": "deny", "src": fmt.Sprintf("fd00:dead:%x::/48", i), "proto": "any"}
		}
		r["id"] = fmt.Sprintf("r%d", i)
		rs = append(rs, r)
	}
	return append(rs, map[string]any{"id": "allow-all", "action": "allow", "priority": 1000})
}

// serviceIP is the round-robin service IP of the service name.
func (n *node) serviceIP(b *testing.B, name string) (ip string, rec deploy.Record) {
	recs, err := n.d.Client.Services(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range recs {
		if r.ServiceName == name {
			a, _ := (table.Entry{ServiceIPs: r.ServiceIPs}).ServiceIP(table.PolicyRoundRobin)
			return a.String(), r
		}
	}
	b.Fatalf("no service %s", name)
	return "", deploy.Record{}
}

// ingressPrograms returns the programs on the TCX ingress hook of the
// interface ifindex in the node namespace, in the order they run, each
// checked against the program the API says module instance ids[i]
// attached there: the chain the eBPF Manager built, as the kernel has it.
func (n *node) ingressPrograms(b *testing.B, ifindex int, ids []string) []*ebpf.Program {
	var res *link.QueryResult
	err := n.ns.Do(func() (err error) {
		res, err = link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: ebpf.AttachTCXIngress})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	if len(res.Programs) != len(ids) {
		b.Fatalf("TCX ingress of ifindex %d holds %d programs, want %d", ifindex, len(res.Programs), len(ids))
	}
	var progs []*ebpf.Program
	for i, id := range ids {
		var info struct {
			Attachments []struct {
				Ifindex   int
				Hook      string
				ProgramID uint32
			}
		}
		if err := n.d.Client.Do(b.Context(), http.MethodGet, "/ebpf/"+id, nil, &info); err != nil {
			b.Fatal(err)
		}
		var want ebpf.ProgramID
		for _, a := range info.Attachments {
			if a.Ifindex == ifindex && a.Hook == "ingress" {
				want = ebpf.ProgramID(a.ProgramID)
			}
		}
		if res.Programs[i].ID != want {
			b.Fatalf("program %d on the hook is %d, want instance %s's %d", i, res.Programs[i].ID, id, want)
		}
		p, err := ebpf.NewProgramFromID(want)
		if err != nil {
			b.Fatal(err)
		}
		progs = append(progs, p)
	}
	return progs
}

// runStats samples each program's run time per run (ns) and run count
// while send runs, with the kernel's run-time statistics turned on for
// exactly that long.
func runStats(b *testing.B, progs []*ebpf.Program, send func()) (ns []float64, runs []uint64) {
	st, err := kernel.EnableRunStats()
	if err != nil {
		b.Fatal(err)
	}
	read := func() []*ebpf.ProgramStats {
		var s []*ebpf.ProgramStats
		for _, p := range progs {
			v, err := p.Stats()
			if err != nil {
				b.Fatal(err)
			}
			s = append(s, v)
		}
		return s
	}
	before := read()
	send()
	after := read()
	_ = st.Close()
	for i := range progs {
		dn := after[i].RunCount - before[i].RunCount
		dt := after[i].Runtime - before[i].Runtime
		if dn == 0 {
			b.Fatalf("program %d did not run", i)
		}
		ns, runs = append(ns, float64(dt.Nanoseconds())/float64(dn)), append(runs, dn)
	}
	return ns, runs
}

// pace sends 18-byte datagrams on c at rate per second for d (in bursts
// every 100 µs) and returns how many it sent.
func pace(c net.Conn, rate int, d time.Duration) int {
	buf := make([]byte, 18)
	start := time.Now()
	sent := 0
	for el := time.Duration(0); el < d; el = time.Since(start) {
		for due := int(el.Seconds() * float64(rate)); sent < due; sent++ {
			_, _ = c.Write(buf)
		}
		time.Sleep(100 * time.Microsecond)
	}
	return sent
}

// testRunNs is the median of n one-repeat BPF_PROG_TEST_RUNs of prog on
// frame, each a fresh copy, run in ns; every verdict must be want.
func testRunNs(b *testing.B, ns *nstest.Netns, prog *ebpf.Program, frame []byte, want int32, n int) float64 {
	var v []float64
	err := ns.Do(func() error {
		for i := 0; i < n; i++ {
			ret, d, err := prog.Benchmark(frame, 1, nil)
			if err != nil {
				return err
			}
			if int32(ret) != want {
				return fmt.Errorf("%v: verdict %d, want %d", prog, int32(ret), want)
			}
			v = append(v, float64(d.Nanoseconds()))
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return median(v)
}
