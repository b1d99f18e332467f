package bench

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/oakestra/netmanager/modules/sdwan/sdwanpb"
	"github.com/oakestra/netmanager/test/nstest"
	"github.com/oakestra/netmanager/test/sdwansite"
)

// BenchmarkSDWAN runs once (-benchtime 1x) and writes $BENCH_SDWAN_OUT
// (JSON) and the markdown section beside it.
func BenchmarkSDWAN(b *testing.B) {
	nstest.RequireRoot()
	out := os.Getenv("BENCH_SDWAN_OUT")
	if out == "" {
		b.Fatal("BENCH_SDWAN_OUT must name the JSON file to write (make bench sets it)")
	}
	root, _ := filepath.Abs("../..")
	nm := bin(b, "NETMANAGER_BIN", "github.com/oakestra/netmanager/node-net-manager/cmd/netmanager")
	a, bb := sdwansite.New(b, sdwansite.Options{Netmanager: nm, ModulesDir: filepath.Join(root, "build", "modules")})
	bb.ServeIperf(b)
	var r SDWANResult
	throughput(b, a, bb, &r)
	packetRates(b, a, bb, &r)
	r.DetectMs, r.FailoverMs = map[string][]float64{}, map[string][]float64{}
	for range 5 {
		for _, c := range []cut{linkDown{bb}, newDropCut(b, bb)} {
			failover(b, a, bb, c, &r)
		}
	}
	r.UpdateUs, r.PacedUs = updateLatency(b, a, 1000, 0), updateLatency(b, a, 1000, time.Millisecond)
	r.ListUs = listLatency(b, a, 1000)
	data, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		b.Fatal(err)
	}
	md, err := RenderSDWAN(r, filepath.Join(root, "docs"))
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(strings.TrimSuffix(out, ".json")+".md", []byte(md), 0o644); err != nil {
		b.Fatal(err)
	}
}

func ie(t pb.IEType, v ...byte) *pb.IE { return &pb.IE{Type: t, Length: uint32(len(v)), Value: v} }

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// passRule is PDR 9: the other site's prefix to the kernel (action PASS),
// ahead of rule 1.
func passRule(remote byte) *pb.Rule {
	return &pb.Rule{Type: pb.RuleType_PDR, Ies: []*pb.IE{ie(pb.IEType_RULE_ID, u32(9)...), ie(pb.IEType_PRECEDENCE, u32(1)...),
		ie(pb.IEType_DST_IP, 10, remote, 0, 0, 16), ie(pb.IEType_ACTION, 1)}}
}

// throughput alternates iperf3 over the overlay and over plain routing
// through the same gateways: a PASS rule on both hands the traffic to the
// kernel, which routes it over WAN 1.
func throughput(b *testing.B, a, bb *sdwansite.Site, r *SDWANResult) {
	a.Node.MustExec(b, "ip", "route", "add", "10.2.0.0/24", "via", "192.0.2.2", "dev", "sdwan1")
	bb.Node.MustExec(b, "ip", "route", "add", "10.1.0.0/24", "via", "192.0.2.1", "dev", "sdwan1")
	ga, gb := a.Gateway(b), bb.Gateway(b)
	pass := func(op pb.Operand) { setPassRules(b, ga, gb, op) }
	for range 5 {
		before := a.WANs(b)["wan1"].TxBytes
		r.OverlayGbs = append(r.OverlayGbs, iperfTCP(b, a.Host, "10.2.0.5"))
		if a.WANs(b)["wan1"].TxBytes-before < 1e6 {
			b.Fatal("the overlay sample did not go over WAN 1's overlay")
		}
		pass(pb.Operand_CREATE)
		before = a.WANs(b)["wan1"].TxBytes
		r.PlainGbs = append(r.PlainGbs, iperfTCP(b, a.Host, "10.2.0.5"))
		if a.WANs(b)["wan1"].TxBytes-before > 1e5 {
			b.Fatal("the plain sample went over the overlay")
		}
		pass(pb.Operand_DELETE)
	}
}

// setPassRules creates or deletes PDR 9 (passRule) on both gateways: with
// it, traffic between the sites is routed by the kernel, not the overlay.
func setPassRules(b *testing.B, ga, gb pb.GatewayClient, op pb.Operand) {
	for _, c := range []struct {
		g      pb.GatewayClient
		remote byte
	}{{ga, 2}, {gb, 1}} {
		rule := passRule(c.remote)
		if op == pb.Operand_DELETE {
			rule.Ies = rule.Ies[:1]
		}
		if _, err := c.g.Apply(b.Context(), &pb.Request{Operand: op, Rules: []*pb.Rule{rule}}); err != nil {
			b.Fatal(err)
		}
	}
}

// A cut takes WAN 1 away and gives it back.
type cut interface {
	name() string
	cut(b *testing.B)
	restore(b *testing.B)
}

type linkDown struct{ s *sdwansite.Site }

func (linkDown) name() string           { return "link down" }
func (c linkDown) cut(b *testing.B)     { c.s.Node.MustExec(b, "ip", "link", "set", "sdwan1", "down") }
func (c linkDown) restore(b *testing.B) { c.s.Node.MustExec(b, "ip", "link", "set", "sdwan1", "up") }

// dropCut drops everything on B's end of WAN 1, both ways, ahead of the
// sdwan module.
type dropCut struct {
	s     *sdwansite.Site
	prog  *ebpf.Program
	links []link.Link
}

func newDropCut(b *testing.B, s *sdwansite.Site) *dropCut {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}}) // TC_ACT_SHOT
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { prog.Close() })
	return &dropCut{s: s, prog: prog}
}

func (*dropCut) name() string { return "drop" }

func (c *dropCut) cut(b *testing.B) {
	err := c.s.Node.Do(func() error {
		l, err := netlink.LinkByName("sdwan1")
		if err != nil {
			return err
		}
		for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
			tl, err := link.AttachTCX(link.TCXOptions{Interface: l.Attrs().Index, Program: c.prog, Attach: at, Anchor: link.Head()})
			if err != nil {
				return err
			}
			c.links = append(c.links, tl)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

func (c *dropCut) restore(b *testing.B) {
	for _, l := range c.links {
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	}
	c.links = nil
}

// failover cuts WAN 1 under a 50 Mbit/s TCP stream and times the failover
// on A, then restores WAN 1.
func failover(b *testing.B, a, bb *sdwansite.Site, c cut, r *SDWANResult) {
	done := make(chan error, 1)
	go func() {
		out, err := a.Iperf("-t", "5", "-b", "50M")
		if err == nil && strings.Contains(out, `"error"`) {
			err = os.ErrInvalid
		}
		done <- err
	}()
	time.Sleep(1500 * time.Millisecond)
	before := a.WANs(b)["wan2"].TxBytes
	c.cut(b)
	cut := time.Now()
	var detect, moved time.Duration
	for time.Since(cut) < 5*time.Second && moved == 0 {
		w := a.WANs(b)
		if !w["wan1"].Up && detect == 0 {
			detect = time.Since(cut)
		}
		if w["wan2"].TxBytes > before {
			moved = time.Since(cut)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if moved == 0 {
		b.Fatal("nothing went over WAN 2 within 5 s of the cut")
	}
	if err := <-done; err != nil {
		r.Resets++
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r.DetectMs[c.name()] = append(r.DetectMs[c.name()], ms(detect))
	r.FailoverMs[c.name()] = append(r.FailoverMs[c.name()], ms(moved))
	c.restore(b)
	for start := time.Now(); !a.WANs(b)["wan1"].Up || !bb.WANs(b)["wan1"].Up; {
		if time.Since(start) > 10*time.Second {
			b.Fatal("WAN 1 did not come back up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// updateLatency times n PDR updates over gRPC (request sent → maps
// written → reply), alternating a rule's precedence, back to back (every 0)
// or one every interval, as a controller would send them now and then
// (both client and daemon then wake from idle for each).
func updateLatency(b *testing.B, a *sdwansite.Site, n int, every time.Duration) []float64 {
	g := a.Gateway(b)
	rule := func(prec uint32) *pb.Rule {
		return &pb.Rule{Type: pb.RuleType_PDR, Ies: []*pb.IE{ie(pb.IEType_RULE_ID, u32(20)...), ie(pb.IEType_PRECEDENCE, u32(prec)...),
			ie(pb.IEType_DST_IP, 10, 99, 0, 0, 16), ie(pb.IEType_ACTION, 2)}}
	}
	if _, err := g.Apply(b.Context(), &pb.Request{Operand: pb.Operand_CREATE, Rules: []*pb.Rule{rule(6)}}); status.Code(err) != codes.OK &&
		status.Code(err) != codes.AlreadyExists {
		b.Fatal(err)
	}
	out := make([]float64, 0, n)
	for i := range n {
		if every > 0 {
			time.Sleep(every)
		}
		req := &pb.Request{Operand: pb.Operand_UPDATE, Rules: []*pb.Rule{rule(7 + uint32(i%2))}}
		start := time.Now()
		if _, err := g.Apply(b.Context(), req); err != nil {
			b.Fatal(err)
		}
		out = append(out, float64(time.Since(start).Nanoseconds())/1000)
	}
	return out
}

// listLatency times n List calls back to back: a round trip to the same
// server that writes no map, beside which the updates' cost shows.
func listLatency(b *testing.B, a *sdwansite.Site, n int) []float64 {
	g := a.Gateway(b)
	if _, err := g.List(b.Context(), &pb.ListRequest{}); err != nil { // connects
		b.Fatal(err)
	}
	out := make([]float64, 0, n)
	for range n {
		start := time.Now()
		if _, err := g.List(b.Context(), &pb.ListRequest{}); err != nil {
			b.Fatal(err)
		}
		out = append(out, float64(time.Since(start).Nanoseconds())/1000)
	}
	return out
}
