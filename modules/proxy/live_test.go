package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
	"github.com/oakestra/netmanager/test/nstest"
)

// liveLink is an interface as a namespace sees it.
func liveLink(t *testing.T, ns *nstest.Netns, name string) netlink.Link {
	t.Helper()
	h, err := netns.GetFromPath(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	l, err := nl.LinkByName(name)
	if err != nil {
		t.Fatalf("%s in %s: %v", name, ns.Name, err)
	}
	return l
}

// capture is a packet socket on eth0 of a namespace that reports whether
// each frame is CHECKSUM_PARTIAL (TP_STATUS_CSUMNOTREADY).
type capture struct{ fd int }

type frame struct {
	data    []byte
	partial bool
}

func newCapture(t *testing.T, ns *nstest.Netns, ifindex int) *capture {
	t.Helper()
	proto := int(uint16(unix.ETH_P_ALL)<<8 | uint16(unix.ETH_P_ALL)>>8) // network order
	c := &capture{}
	err := ns.Do(func() (err error) {
		if c.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto); err != nil {
			return err
		}
		if err := unix.Bind(c.fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifindex}); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(c.fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return err
		}
		tv := unix.NsecToTimeval((300 * time.Millisecond).Nanoseconds())
		return unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		t.Fatalf("packet socket in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { unix.Close(c.fd) })
	return c
}

// frames returns what arrived until the socket stays quiet.
func (c *capture) frames(t *testing.T) []frame {
	t.Helper()
	var out []frame
	buf, oob := make([]byte, 4096), make([]byte, 256)
	for {
		n, oobn, _, from, err := unix.Recvmsg(c.fd, buf, oob, 0)
		if errors.Is(err, unix.EINTR) {
			continue // a socket with SO_RCVTIMEO is not restarted after Go's preemption signal
		}
		if errors.Is(err, unix.EAGAIN) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			t.Fatal(err)
		}
		f := frame{data: append([]byte(nil), buf[:n]...)}
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= 4 {
				f.partial = binary.NativeEndian.Uint32(m.Data)&unix.TP_STATUS_CSUMNOTREADY != 0
			}
		}
		out = append(out, f)
	}
}

// liveNet: a client namespace and a server namespace, each on a veth into a
// node namespace; the data plane on the client's host veth (TCX ingress),
// translating the server's service IPs.
type liveNet struct {
	node, cli, srv *nstest.Netns
	vsrv, srvEth   netlink.Link
	coll           *ebpf.Collection
}

func newLiveNet(t *testing.T) *liveNet {
	t.Helper()
	node, cli, srv := nstest.NewNetns(t, "pxnode"), nstest.NewNetns(t, "pxcli"), nstest.NewNetns(t, "pxsrv")
	node.MustExec(t, "ip", "link", "add", "vcli", "type", "veth", "peer", "name", "eth0", "netns", cli.Name)
	node.MustExec(t, "ip", "link", "add", "vsrv", "type", "veth", "peer", "name", "eth0", "netns", srv.Name)
	node.MustExec(t, "ip", "addr", "add", "10.18.0.1/24", "dev", "vcli")
	node.MustExec(t, "ip", "addr", "add", "fd00:18::1/64", "dev", "vcli", "nodad")
	node.MustExec(t, "ip", "link", "set", "vcli", "up")
	node.MustExec(t, "ip", "link", "set", "vsrv", "up")
	for _, c := range []struct {
		ns     *nstest.Netns
		v4, v6 string
	}{{cli, "10.18.0.2/24", "fd00:18::2/64"}, {srv, "10.18.0.3/24", "fd00:18::3/64"}} {
		c.ns.MustExec(t, "ip", "addr", "add", c.v4, "dev", "eth0")
		c.ns.MustExec(t, "ip", "addr", "add", c.v6, "dev", "eth0", "nodad")
		c.ns.MustExec(t, "ip", "link", "set", "eth0", "up")
	}
	cli.MustExec(t, "ip", "route", "add", "10.30.0.0/16", "via", "10.18.0.1")
	cli.MustExec(t, "ip", "-6", "route", "add", "fdff:2000::/64", "via", "fd00:18::1")

	vcli, vsrv := liveLink(t, node, "vcli"), liveLink(t, node, "vsrv")
	cliEth, srvEth := liveLink(t, cli, "eth0"), liveLink(t, srv, "eth0")
	coll := bpftest.Load(t, bpftest.ModuleObject(t, "modules", "proxy"))
	table := &fakeTable{entries: []module.ServiceEntry{
		{Name: "app.ns.cli.ns", NsIP: v6("10.18.0.2"), NsIPv6: v6("fd00:18::2"), ServiceIPs: []module.ServiceIP{
			{Policy: "instance", Address: v6("10.30.0.2")}, {Policy: "instance", Address: v6("fdff:2000::2")}}},
		{Name: "app.ns.srv.ns", NsIP: v6("10.18.0.3"), NsIPv6: v6("fd00:18::3"), ServiceIPs: []module.ServiceIP{
			{Policy: "round_robin", Address: v6("10.30.0.1")}, {Policy: "round_robin", Address: v6("fdff:2000::1")}}},
	}}
	px, err := newProxy(module.Base{Config: []byte("null"), Router: mux.NewRouter(), Log: logrus.New(), Services: table,
		DataPlane: &module.DataPlane{Maps: coll.Maps, Programs: coll.Programs}})
	if err != nil {
		t.Fatal(err)
	}
	if err := coll.Maps["config"].Put(uint32(0), configValue(testRng, testRng6, [6]byte(vcli.Attrs().HardwareAddr))); err != nil {
		t.Fatal(err)
	}
	px.attached = map[netip.Addr]local{
		v6("10.18.0.2"): {ifindex: uint32(vcli.Attrs().Index), mac: [6]byte(cliEth.Attrs().HardwareAddr), nsIP6: v6("fd00:18::2")},
		v6("10.18.0.3"): {ifindex: uint32(vsrv.Attrs().Index), mac: [6]byte(srvEth.Attrs().HardwareAddr), nsIP6: v6("fd00:18::3")},
	}
	if err := px.sync(); err != nil {
		t.Fatal(err)
	}
	l := &liveNet{node: node, cli: cli, srv: srv, vsrv: vsrv, srvEth: srvEth, coll: coll}
	l.attach(t, vcli)
	return l
}

// attach puts the data plane on a host veth's TC ingress (TCX, or a
// legacy filter on kernels before 6.6).
func (l *liveNet) attach(t *testing.T, veth netlink.Link) {
	t.Helper()
	bpftest.AttachIngress(t, l.node.Do, veth.Attrs().Index, l.coll.Programs[module.ProgramIngress])
}

// liveTopology: a liveNet and the server's packet capture.
func liveTopology(t *testing.T) (cli *nstest.Netns, cap *capture) {
	t.Helper()
	l := newLiveNet(t)
	return l.cli, newCapture(t, l.srv, l.srvEth.Attrs().Index)
}

// On live traffic a service's TCP and UDP packets are CHECKSUM_PARTIAL: the
// field holds the pseudo-header sum, which the receiving NIC or stack
// completes. After translation the field must be the sum of the new
// pseudo-header — a wrong one goes unnoticed between namespaces (the stack
// trusts CHECKSUM_PARTIAL) and breaks on a real NIC.
func TestLivePartialChecksums(t *testing.T) {
	bpftest.RequireRoot(t)
	cli, capt := liveTopology(t)
	if err := cli.Do(func() error {
		for _, addr := range []string{"10.30.0.1", "fdff:2000::1"} {
			c, err := net.Dial("udp", net.JoinHostPort(addr, "9999"))
			if err != nil {
				return err
			}
			_, err = c.Write([]byte("partial, please"))
			c.Close()
			if err != nil {
				return err
			}
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "8080"), 300*time.Millisecond); err == nil {
				c.Close() // nobody listens: the SYN is what counts
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range capt.frames(t) {
		pk := gopacket.NewPacket(f.data, layers.LayerTypeEthernet, gopacket.Default)
		var src, dst []byte
		var family string
		if ip, ok := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			src, dst, family = ip.SrcIP.To4(), ip.DstIP.To4(), "IPv4"
		} else if ip, ok := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
			src, dst, family = ip.SrcIP, ip.DstIP, "IPv6"
		} else {
			continue
		}
		var proto uint8
		var seg []byte
		var ckOff int
		switch l4 := pk.TransportLayer().(type) {
		case *layers.TCP:
			proto, seg, ckOff = 6, append(l4.Contents, l4.Payload...), 16
		case *layers.UDP:
			proto, seg, ckOff = 17, append(l4.Contents, l4.Payload...), 6
		default:
			continue
		}
		name := family + "/" + map[uint8]string{6: "TCP", 17: "UDP"}[proto]
		if s, d := netip.AddrFrom16([16]byte(net.IP(src).To16())).Unmap(), netip.AddrFrom16([16]byte(net.IP(dst).To16())).Unmap(); s != v6("10.30.0.2") && s != v6("fdff:2000::2") ||
			d != v6("10.18.0.3") && d != v6("fd00:18::3") {
			t.Fatalf("%s: %s -> %s arrived untranslated", name, s, d)
		}
		field := binary.BigEndian.Uint16(seg[ckOff:])
		want := uint16(pseudo(src, dst, proto, len(seg)))
		if !f.partial {
			t.Fatalf("%s arrived without CHECKSUM_PARTIAL: the test did not exercise that path", name)
		}
		if !equiv(field, want) {
			t.Fatalf("%s: partial checksum field %#04x, the new pseudo-header's sum is %#04x", name, field, want)
		}
		seen[name] = true
	}
	for _, w := range []string{"IPv4/TCP", "IPv4/UDP", "IPv6/TCP", "IPv6/UDP"} {
		if !seen[w] {
			t.Errorf("no %s packet arrived translated (seen %v)", w, seen)
		}
	}
}

// A client's UDP to a closed port behind a service IP is refused: the
// server's kernel answers port unreachable, which the data plane on the
// server's host veth translates (the client's kernel verifies its ICMP
// checksum and finds the socket by the quoted packet) — IPv4 and IPv6.
func TestLiveICMPErrors(t *testing.T) {
	bpftest.RequireRoot(t)
	l := newLiveNet(t)
	l.attach(t, l.vsrv)
	gw := l.vsrv.Attrs().HardwareAddr.String()
	l.srv.MustExec(t, "ip", "neigh", "add", "10.18.0.1", "lladdr", gw, "dev", "eth0")
	l.srv.MustExec(t, "ip", "-6", "neigh", "add", "fd00:18::1", "lladdr", gw, "dev", "eth0")
	l.srv.MustExec(t, "ip", "route", "add", "10.30.0.0/16", "via", "10.18.0.1")
	l.srv.MustExec(t, "ip", "-6", "route", "add", "fdff:2000::/64", "via", "fd00:18::1")
	for _, addr := range []string{"10.30.0.1", "fdff:2000::1"} {
		if err := l.cli.Do(func() error {
			c, err := net.Dial("udp", net.JoinHostPort(addr, "9999"))
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.Write([]byte("anyone?")); err != nil {
				return err
			}
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err = c.Read(make([]byte, 16))
			if !errors.Is(err, unix.ECONNREFUSED) {
				return fmt.Errorf("read: %v, want connection refused", err)
			}
			return nil
		}); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	var perCPU []uint64
	if err := l.coll.Maps["stats"].Lookup(uint32(statICMPError), &perCPU); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	if n != 2 {
		t.Fatalf("icmpErrors %d, want 2", n)
	}
}
