package bench

import (
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	pb "github.com/oakestra/netmanager/modules/sdwan/sdwanpb"
	"github.com/oakestra/netmanager/test/sdwansite"
)

// The packet-rate benchmark of the two sites: a UDP flood, one sender with
// sendmmsg, at three frame sizes, over the overlay and routed plainly
// through the same gateways, in alternating samples.
//
//   - Uplink: site A's host floods site B's host; A's gateway encapsulates
//     (overlay) or routes (a PASS rule). An eBPF counter at the head of B's
//     WAN 1 ingress counts and drops the flood, so B's own work is the same
//     either way and the rate is A's.
//   - Downlink: A's node sends the flood into WAN 1 from a raw socket,
//     ready-made: GRE from A's WAN address to B's around the LAN packet
//     (overlay; B decapsulates it), or the LAN packet itself (plain; B
//     routes it). Site B's host counts what its UDP layer takes in, so the
//     rate is B's.
const (
	upPort    = 9123 // the uplink flood's UDP destination port
	downPort  = 9124 // the downlink flood's
	ppsSample = time.Second
	ppsRounds = 5
)

// ppsSizes are the flood's Ethernet frame sizes, counting the 4-byte FCS
// as RFC 2544 does: a 64 B frame carries 18 bytes of UDP payload.
var ppsSizes = []int{64, 512, 1400}

// packetRates measures every direction and size, ppsRounds times,
// overlay and plain alternating (which goes first alternates by round).
// The kernel routes between the sites already (throughput added the
// routes).
func packetRates(b *testing.B, a, bb *sdwansite.Site, r *SDWANResult) {
	ga, gb := a.Gateway(b), bb.Gateway(b)
	up := newFloodCounter(b, bb)
	down := newDownlinkFlood(b, a, bb)
	idx := map[string]int{}
	for _, dir := range []string{"uplink", "downlink"} {
		for _, f := range ppsSizes {
			idx[fmt.Sprint(dir, f)] = len(r.Rates)
			r.Rates = append(r.Rates, SDWANRate{Dir: dir, Frame: f})
		}
	}
	for round := range ppsRounds {
		for _, f := range ppsSizes {
			for i := range 2 {
				overlay := (i+round)%2 == 0
				if !overlay {
					setPassRules(b, ga, gb, pb.Operand_CREATE)
				}
				add(&r.Rates[idx[fmt.Sprint("uplink", f)]], overlay, uplinkRate(b, a, up, f, overlay))
				if !overlay {
					setPassRules(b, ga, gb, pb.Operand_DELETE)
				}
				add(&r.Rates[idx[fmt.Sprint("downlink", f)]], overlay, down.rate(b, bb, f, overlay))
			}
		}
	}
}

func add(r *SDWANRate, overlay bool, pps float64) {
	if overlay {
		r.OverlayPPS = append(r.OverlayPPS, pps)
	} else {
		r.PlainPPS = append(r.PlainPPS, pps)
	}
}

// floodCounter counts and drops, at the head of a site's WAN 1 ingress,
// IPv4 UDP to upPort, bare or inside GRE; everything else goes on to the
// gateway (its probes and the downlink flood among it).
type floodCounter struct {
	count *ebpf.Map
	prog  *ebpf.Program
}

func newFloodCounter(b *testing.B, s *sdwansite.Site) *floodCounter {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	// LD_ABS reads at frame offsets: Ethernet 14, IPv4 20 (the flood has no
	// options), GRE 4, then the inner IPv4 header.
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "MIT", Instructions: asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadAbs(12, asm.Half),
		asm.JNE.Imm(asm.R0, 0x0800, "pass"),
		asm.LoadAbs(23, asm.Byte),
		asm.JEq.Imm(asm.R0, 17, "udp"),
		asm.JNE.Imm(asm.R0, 47, "pass"),
		asm.LoadAbs(36, asm.Half), // GRE protocol
		asm.JNE.Imm(asm.R0, 0x0800, "pass"),
		asm.LoadAbs(14+24+9, asm.Byte), // inner protocol
		asm.JNE.Imm(asm.R0, 17, "pass"),
		asm.LoadAbs(14+24+20+2, asm.Half), // inner UDP destination port
		asm.JNE.Imm(asm.R0, upPort, "pass"),
		asm.Ja.Label("hit"),
		asm.LoadAbs(14+20+2, asm.Half).WithSymbol("udp"),
		asm.JNE.Imm(asm.R0, upPort, "pass"),
		asm.StoreImm(asm.R10, -4, 0, asm.Word).WithSymbol("hit"),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 2).WithSymbol("drop"), // TC_ACT_SHOT
		asm.Return(),
		asm.Mov.Imm(asm.R0, -1).WithSymbol("pass"), // TC_ACT_UNSPEC: the next program
		asm.Return(),
	}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { prog.Close() })
	err = s.Node.Do(func() error {
		l, err := netlink.LinkByName("sdwan1")
		if err != nil {
			return err
		}
		tl, err := link.AttachTCX(link.TCXOptions{Interface: l.Attrs().Index, Program: prog, Attach: ebpf.AttachTCXIngress, Anchor: link.Head()})
		if err != nil {
			return err
		}
		b.Cleanup(func() { tl.Close() })
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return &floodCounter{count: m, prog: prog}
}

func (c *floodCounter) read(b *testing.B) uint64 {
	var n uint64
	if err := c.count.Lookup(uint32(0), &n); err != nil {
		b.Fatal(err)
	}
	return n
}

// uplinkRate floods from A's host to B's for ppsSample and returns the
// packets per second B's WAN 1 received. An overlay sample must have gone
// over A's WAN 1 overlay, a plain one must not.
func uplinkRate(b *testing.B, a *sdwansite.Site, c *floodCounter, frame int, overlay bool) float64 {
	var conn *net.UDPConn
	err := a.Host.Do(func() error {
		cn, err := net.Dial("udp4", net.JoinHostPort(a.OtherHost(), fmt.Sprint(upPort)))
		if err == nil {
			conn = cn.(*net.UDPConn)
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	payload := make([]byte, frame-18-28)
	if _, err := blastUDP(conn, payload, 20*time.Millisecond); err != nil { // the flow's first packets
		b.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	tx0, n0 := a.WANs(b)["wan1"].TxPackets, c.read(b)
	start := time.Now()
	sent, err := blastUDP(conn, payload, ppsSample)
	el := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	tx, n := a.WANs(b)["wan1"].TxPackets-tx0, c.read(b)-n0
	checkPath(b, "uplink", frame, overlay, sent, n, tx)
	return float64(n) / el.Seconds()
}

// checkPath fails a sample whose packets did not take the path it
// measures: most of what arrived went over the overlay (its WAN counter)
// in an overlay sample, next to none in a plain one.
func checkPath(b *testing.B, dir string, frame int, overlay bool, sent int, got, overlayPkts uint64) {
	if got == 0 {
		b.Fatalf("%s %d B: none of %d packets arrived", dir, frame, sent)
	}
	if overlay && overlayPkts < got {
		b.Fatalf("%s %d B overlay sample: %d packets arrived, %d went over the overlay", dir, frame, got, overlayPkts)
	}
	if !overlay && overlayPkts > got/100 {
		b.Fatalf("%s %d B plain sample: %d of %d packets went over the overlay", dir, frame, overlayPkts, got)
	}
}

// downlinkFlood sends ready-made IPv4 packets from A's node into WAN 1
// (a raw socket: the kernel sends them as they are, filling in only the
// outer checksum), to B's host, which takes them in on a socket nothing
// reads (its UDP layer counts them: udpPassed).
type downlinkFlood struct {
	fd      int
	hostPID int
}

func newDownlinkFlood(b *testing.B, a, bb *sdwansite.Site) *downlinkFlood {
	d := &downlinkFlood{hostPID: bb.Host.StartProcess(b)}
	err := a.Node.Do(func() (err error) {
		d.fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(d.fd) })
	var sink net.PacketConn
	if err := bb.Host.Do(func() (err error) { sink, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", downPort)); return }); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	return d
}

// rate sends the flood for ppsSample and returns the packets per second
// B's host took in. An overlay sample must have been decapsulated by B's
// WAN 1, a plain one not.
func (d *downlinkFlood) rate(b *testing.B, bb *sdwansite.Site, frame int, overlay bool) float64 {
	pkt := lanPacket(frame, "10.1.0.5", bb.LAN+".0.5")
	dst := net.ParseIP(bb.LAN + ".0.5")
	if overlay {
		pkt = greWrap(pkt, "192.0.2.1", "192.0.2.2")
		dst = net.ParseIP("192.0.2.2")
	}
	if _, err := blastRaw(d.fd, pkt, dst, 20*time.Millisecond); err != nil {
		b.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	rx0 := bb.WANs(b)["wan1"].RxPackets
	n0, err := udpPassed(d.hostPID)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	sent, err := blastRaw(d.fd, pkt, dst, ppsSample)
	el := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	n1, err := udpPassed(d.hostPID)
	if err != nil {
		b.Fatal(err)
	}
	checkPath(b, "downlink", frame, overlay, sent, n1-n0, bb.WANs(b)["wan1"].RxPackets-rx0)
	return float64(n1-n0) / el.Seconds()
}

// lanPacket is an IPv4 UDP packet from src to dst:downPort that makes an
// Ethernet frame of frame bytes with the FCS (no UDP checksum).
func lanPacket(frame int, src, dst string) []byte {
	p := make([]byte, frame-18)
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	copy(p[12:], net.ParseIP(src).To4())
	copy(p[16:], net.ParseIP(dst).To4())
	binary.BigEndian.PutUint16(p[10:], ipv4Checksum(p[:20]))
	binary.BigEndian.PutUint16(p[20:], 40000)
	binary.BigEndian.PutUint16(p[22:], downPort)
	binary.BigEndian.PutUint16(p[24:], uint16(len(p)-20))
	return p
}

// greWrap puts inner in outer IPv4 (DF) and GRE from src to dst, as a
// peer gateway's data plane sends it.
func greWrap(inner []byte, src, dst string) []byte {
	p := make([]byte, 24+len(inner))
	p[0], p[8], p[9] = 0x45, 64, 47
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[6:], 0x4000)
	copy(p[12:], net.ParseIP(src).To4())
	copy(p[16:], net.ParseIP(dst).To4())
	binary.BigEndian.PutUint16(p[10:], ipv4Checksum(p[:20]))
	binary.BigEndian.PutUint16(p[22:], 0x0800)
	copy(p[24:], inner)
	return p
}

func ipv4Checksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// blastRaw sends pkt to dst on the raw socket fd for d, 64 packets per
// sendmmsg(2), and returns how many it sent.
func blastRaw(fd int, pkt []byte, dst net.IP, d time.Duration) (int, error) {
	const batch = 64
	var sa unix.RawSockaddrInet4
	sa.Family = unix.AF_INET
	copy(sa.Addr[:], dst.To4())
	iov := make([]unix.Iovec, batch)
	msgs := make([]unix.Mmsghdr, batch)
	for i := range msgs {
		iov[i].Base = &pkt[0]
		iov[i].SetLen(len(pkt))
		msgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&sa))
		msgs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
		msgs[i].Hdr.Iov = &iov[i]
		msgs[i].Hdr.SetIovlen(1)
	}
	sent := 0
	for start := time.Now(); time.Since(start) < d; {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), batch, 0, 0, 0)
		switch e {
		case 0:
			sent += int(n)
		case unix.ENOBUFS, unix.EAGAIN, unix.EINTR:
		default:
			return sent, fmt.Errorf("sendmmsg: %w", e)
		}
	}
	return sent, nil
}
