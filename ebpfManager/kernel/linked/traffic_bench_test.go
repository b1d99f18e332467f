package linked

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/oakestra/netmanager/ebpfManager/kernel"
	"github.com/oakestra/netmanager/test/nstest"
)

// BenchmarkTraffic sends 60-byte UDP frames from one namespace to another
// over a veth pair whose receiving end's TC ingress runs, in turn: nothing,
// the chain packetcounter → firewall → proxy as 3 TCX links (today), and the
// same chain as 1 linked program. Every module passes the packets on.
//
// The whole receive path of a datagram sent over a veth (veth → backlog →
// TC ingress → IP → UDP) runs on the sender's CPU, in its system call
// (softirqs run at local_bh_enable) — and this kernel has no
// IRQ_TIME_ACCOUNTING, so that time is the sending thread's CPU time. The
// sender is paced (sendRate, 64 datagrams per sendmmsg) so softirqs are not
// pushed to ksoftirqd, and the figure is the sending thread's CPU time per
// datagram: what the path costs, much less disturbed by other load on the
// machine than a rate. Samples of sampleDur alternate between the three
// configurations; the chain's cost is cpu(config) − cpu(nothing) of the same
// round; the figures are medians over rounds and the least disturbed (lowest)
// sample. A last pass turns the kernel's run-time statistics on and reads
// the programs' own time per packet (which leaves out TCX's dispatch between
// programs, and is inflated by the statistics themselves).
func BenchmarkTraffic(b *testing.B) {
	const rounds, sampleDur, sendRate = 25, 250 * time.Millisecond, 50000
	start := time.Now()
	c := newChainSet(b)
	linked := c.linked(b, false)
	defer closeProgs(linked)
	var today []*ebpf.Program
	for _, in := range c.insts {
		today = append(today, in.coll.Programs["nm_ingress"])
	}
	p := newPair(b)
	configs := []struct {
		name  string
		progs []*ebpf.Program
	}{{"none", nil}, {"tcx3", today}, {"linked", linked[:1]}}
	if err := p.attach(today); err != nil { // warm up: ARP, caches
		b.Fatal(err)
	}
	p.send(b, 200*time.Millisecond, sendRate)
	p.detach()
	b.Logf("load average at start: %s", loadavg())

	cpu := make([][]float64, len(configs)) // sender CPU ns per datagram, per round
	var lost uint64
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			for j, cf := range configs {
				if err := p.attach(cf.progs); err != nil {
					b.Fatal(err)
				}
				s := p.send(b, sampleDur, sendRate)
				p.detach()
				cpu[j] = append(cpu[j], s.cpuPer())
				lost += s.sent - s.arrived
			}
		}
	}
	var chain [3][]float64
	var ratio []float64
	for r := range cpu[0] {
		for j := range configs {
			chain[j] = append(chain[j], cpu[j][r]-cpu[0][r])
		}
		ratio = append(ratio, cpu[2][r]/cpu[1][r])
	}
	best := make([]float64, len(configs))
	for j, cf := range configs {
		best[j] = slices.Min(cpu[j])
		b.ReportMetric(median(cpu[j]), cf.name+"-cpu-ns")
	}
	tcxChain, linkedChain := median(chain[1]), median(chain[2])
	b.ReportMetric(tcxChain, "tcx3-chain-ns")
	b.ReportMetric(linkedChain, "linked-chain-ns")
	b.ReportMetric(median(ratio), "linked/tcx3-path")
	b.ReportMetric(best[1]-best[0], "tcx3-chain-best-ns")
	b.ReportMetric(best[2]-best[0], "linked-chain-best-ns")
	b.Logf("UDP 60 B at %d/s through one veth, %d rounds of %s, sender CPU ns per datagram (median): none %.0f, tcx3 %.0f, linked %.0f; chain (median of per-round differences): tcx3 %.1f, linked %.1f (%.3f×); path linked/tcx3 per round, median %.4f; lowest samples: none %.0f, tcx3 %.0f, linked %.0f, chain tcx3 %.1f, linked %.1f; %d datagrams lost",
		sendRate, rounds*b.N, sampleDur, median(cpu[0]), median(cpu[1]), median(cpu[2]), tcxChain, linkedChain, linkedChain/tcxChain, median(ratio),
		best[0], best[1], best[2], best[1]-best[0], best[2]-best[0], lost)
	b.Logf("per-round path linked/tcx3: %s", fmtSlice(ratio))

	// The programs' own run time, with the kernel's statistics on.
	stats, err := kernel.EnableRunStats()
	if err != nil {
		b.Fatal(err)
	}
	own := make([]float64, len(configs))
	for j, cf := range configs[1:] {
		if err := p.attach(cf.progs); err != nil {
			b.Fatal(err)
		}
		before := runTimes(b, cf.progs)
		p.send(b, time.Second, sendRate)
		after := runTimes(b, cf.progs)
		p.detach()
		var parts []string
		for k := range cf.progs {
			dn := after[k].RunCount - before[k].RunCount
			if dn == 0 {
				b.Fatalf("%s: program %d did not run", cf.name, k)
			}
			per := float64((after[k].Runtime - before[k].Runtime).Nanoseconds()) / float64(dn)
			own[j+1] += per
			parts = append(parts, fmt.Sprintf("%.1f", per))
		}
		b.Logf("run-time statistics, %s: %.1f ns per packet (%s)", cf.name, own[j+1], strings.Join(parts, " + "))
	}
	_ = stats.Close()
	b.ReportMetric(own[1], "tcx3-stats-ns")
	b.ReportMetric(own[2], "linked-stats-ns")
	b.Logf("BenchmarkTraffic took %s; load average at the end: %s", time.Since(start).Round(time.Millisecond), loadavg())
}

func fmtSlice(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, strconv.FormatFloat(x, 'f', 3, 64))
	}
	return "[" + strings.Join(s, " ") + "]"
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return err.Error()
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func runTimes(b *testing.B, progs []*ebpf.Program) []*ebpf.ProgramStats {
	b.Helper()
	var out []*ebpf.ProgramStats
	for _, p := range progs {
		s, err := p.Stats()
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// pair is two namespaces joined by a veth: the sender's va (10.250.0.1)
// and the receiver's vb (10.250.0.2), whose TC ingress the chain goes on.
type pair struct {
	a, z   *nstest.Netns
	vb     int
	conn   *net.UDPConn
	links  []link.Link
	sink   net.PacketConn
	frames []byte
}

func newPair(b *testing.B) *pair {
	b.Helper()
	p := &pair{a: nstest.NewNetns(b, "nmlinked-tx"), z: nstest.NewNetns(b, "nmlinked-rx")}
	p.a.MustExec(b, "ip", "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", p.z.Name)
	p.a.MustExec(b, "ip", "addr", "add", "10.250.0.1/30", "dev", "va")
	p.a.MustExec(b, "ip", "link", "set", "va", "up")
	p.z.MustExec(b, "ip", "addr", "add", "10.250.0.2/30", "dev", "vb")
	p.z.MustExec(b, "ip", "link", "set", "vb", "up")
	err := p.z.Do(func() (err error) {
		ifc, err := net.InterfaceByName("vb")
		if err != nil {
			return err
		}
		p.vb = ifc.Index
		// A socket that is never read: datagrams fill its buffer and then
		// count as receive errors, past the whole path, without a reader's
		// CPU time.
		p.sink, err = net.ListenPacket("udp4", "10.250.0.2:9")
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.sink.Close() })
	err = p.a.Do(func() (err error) {
		p.conn, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(10, 250, 0, 2), Port: 9})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.conn.Close() })
	p.frames = make([]byte, 18) // 14 + 20 + 8 + 18 = 60 bytes on the wire
	return p
}

func (p *pair) attach(progs []*ebpf.Program) error {
	return p.z.Do(func() error {
		for _, prog := range progs {
			l, err := attachTail(p.vb, ebpf.AttachTCXIngress, prog)
			if err != nil {
				return err
			}
			p.links = append(p.links, l)
		}
		return nil
	})
}

func (p *pair) detach() {
	for _, l := range p.links {
		l.Close()
	}
	p.links = nil
}

// sample is one paced send: datagrams sent and taken in by the receiver's
// UDP layer, and the sending thread's CPU time.
type sample struct {
	sent, arrived uint64
	cpu, wall     time.Duration
}

func (s sample) cpuPer() float64 { return float64(s.cpu.Nanoseconds()) / float64(s.sent) }

// send sends for d at rate datagrams per second from one locked thread.
func (p *pair) send(b *testing.B, d time.Duration, rate int) sample {
	b.Helper()
	before := p.udpIn(b)
	var s sample
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c0 := threadCPU()
		t0 := time.Now()
		var n int
		n, err = sendmmsg(p.conn, p.frames, d, rate)
		s.cpu, s.wall, s.sent = threadCPU()-c0, time.Since(t0), uint64(n)
	}()
	<-done
	if err != nil {
		b.Fatal(err)
	}
	s.arrived = p.udpIn(b) - before
	if s.sent == 0 || s.arrived == 0 {
		b.Fatalf("sent %d datagrams, %d arrived", s.sent, s.arrived)
	}
	return s
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(err)
	}
	return time.Duration(ts.Nano())
}

// udpIn is the receiver namespace's Udp InDatagrams + InErrors.
func (p *pair) udpIn(b *testing.B) uint64 {
	b.Helper()
	var sum uint64
	err := p.z.Do(func() error {
		data, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		var head []string
		for _, l := range strings.Split(string(data), "\n") {
			f := strings.Fields(l)
			if len(f) == 0 || f[0] != "Udp:" {
				continue
			}
			if head == nil {
				head = f
				continue
			}
			for i, name := range head {
				if (name == "InDatagrams" || name == "InErrors") && i < len(f) {
					v, err := strconv.ParseUint(f[i], 10, 64)
					if err != nil {
						return err
					}
					sum += v
				}
			}
			return nil
		}
		return fmt.Errorf("no Udp counters")
	})
	if err != nil {
		b.Fatal(err)
	}
	return sum
}

// sendmmsg sends payload on the connected conn for d, 64 datagrams per
// system call, at most rate per second, and returns how many it sent.
func sendmmsg(conn *net.UDPConn, payload []byte, d time.Duration, rate int) (int, error) {
	const batch = 64
	iov := make([]unix.Iovec, batch)
	msgs := make([]unix.Mmsghdr, batch)
	for i := range msgs {
		iov[i].Base = &payload[0]
		iov[i].SetLen(len(payload))
		msgs[i].Hdr.Iov = &iov[i]
		msgs[i].Hdr.SetIovlen(1)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	sent := 0
	var serr error
	start := time.Now()
	for el := time.Duration(0); el < d && serr == nil; el = time.Since(start) {
		if due := int(el.Seconds() * float64(rate)); sent >= due {
			time.Sleep(time.Duration(float64(sent-due+batch) / float64(rate) * float64(time.Second)))
			continue
		}
		err := rc.Write(func(fd uintptr) bool {
			n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[0])), batch, 0, 0, 0)
			switch e {
			case 0:
				sent += int(n)
			case unix.EAGAIN:
				return false
			case unix.ENOBUFS, unix.ECONNREFUSED:
			default:
				serr = fmt.Errorf("sendmmsg: %w", e)
			}
			return true
		})
		if err != nil {
			return sent, err
		}
	}
	return sent, serr
}
