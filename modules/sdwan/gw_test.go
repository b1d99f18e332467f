package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket/layers"
	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
	"github.com/oakestra/netmanager/test/nstest"
)

const (
	next     = -1 // NM_NEXT
	drop     = 2  // NM_DROP
	redirect = 7  // NM_REDIRECT
)

// The gateway of the data-plane tests: a namespace with a LAN veth (a LAN
// host 10.1.0.5 / fd01::5 known as a permanent neighbour) and two WAN veths.
var (
	lanMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0x01, 0x01}
	hostMAC = net.HardwareAddr{0x02, 0, 0, 0, 0x01, 0x05}
	peerMAC = net.HardwareAddr{0x02, 0, 0, 0, 0x02, 0x02} // WAN 1's peer, where a test gives it a neighbour entry
)

const gwConfig = `{
  "lan": ["lan0"],
  "wans": [
    {"name": "wan1", "interface": "wan1", "peer": "192.0.2.2"},
    {"name": "wan2", "interface": "wan2", "peer": "198.51.100.2", "tos": "0x10", "mtu": 1400}
  ],
  "grpc": "off",
  "health": {"interval": "0s"},
  "rules": %s,
  "lbr": %s%s
}`

type gw struct {
	ns     *nstest.Netns
	coll   *ebpf.Collection
	g      *SDWAN
	ifidx  map[string]int
	router *mux.Router
}

// newGW sets up the namespace, loads the data plane with the config's map
// sizes and starts the control plane on it, attached to lan0, wan1, wan2.
func newGW(t testing.TB, rules, lbr, extra string) *gw {
	t.Helper()
	bpftest.RequireRoot(t)
	ns := nstest.NewNetns(t, "sdwan-dp")
	for _, c := range [][]string{
		{"ip", "link", "add", "lan0", "address", lanMAC.String(), "type", "veth", "peer", "name", "lan0p"},
		{"ip", "link", "add", "wan1", "type", "veth", "peer", "name", "wan1p"},
		{"ip", "link", "add", "wan2", "type", "veth", "peer", "name", "wan2p"},
		{"ip", "addr", "add", "10.1.0.1/24", "dev", "lan0"},
		{"ip", "addr", "add", "fd01::1/64", "dev", "lan0", "nodad"},
		{"ip", "addr", "add", "192.0.2.1/30", "dev", "wan1"},
		{"ip", "addr", "add", "198.51.100.1/30", "dev", "wan2"},
		{"sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"},
	} {
		ns.MustExec(t, c...)
	}
	for _, l := range []string{"lan0", "lan0p", "wan1", "wan1p", "wan2", "wan2p"} {
		ns.MustExec(t, "ip", "link", "set", l, "up")
	}
	ns.MustExec(t, "ip", "neigh", "add", "10.1.0.5", "lladdr", hostMAC.String(), "dev", "lan0", "nud", "permanent")
	ns.MustExec(t, "ip", "-6", "neigh", "add", "fd01::5", "lladdr", hostMAC.String(), "dev", "lan0", "nud", "permanent")
	cfg := json.RawMessage(fmt.Sprintf(gwConfig, rules, lbr, extra))
	sizes, err := MapSizes(cfg)
	if err != nil {
		t.Fatal(err)
	}
	coll := bpftest.LoadSized(t, "modules", "sdwan", sizes)
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	w := &gw{ns: ns, coll: coll, ifidx: map[string]int{}, router: mux.NewRouter()}
	mod, err := New(module.Base{ID: "1", Name: "sdwan", Config: cfg, Router: w.router, Log: log,
		DataPlane: &module.DataPlane{Maps: coll.Maps, Programs: coll.Programs}, HostInterfaces: []string{"lan0", "wan1", "wan2"}})
	if err != nil {
		t.Fatal(err)
	}
	w.g = mod.(*SDWAN)
	t.Cleanup(func() { _ = w.g.Close() })
	err = ns.Do(func() error {
		for _, name := range []string{"lan0", "wan1", "wan2"} {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			w.ifidx[name] = l.Attrs().Index
			if err := w.g.Attach(module.Attachment{Interface: module.Interface{Name: name, Ifindex: l.Attrs().Index}, Hooks: module.Hooks}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// run runs nm_ingress on a frame as if it arrived on ifname (gsoSize > 0:
// as a GSO packet) inside the gateway's namespace.
func (w *gw) run(t testing.TB, ifname string, frame []byte, gsoSize ...uint32) (int32, []byte) {
	t.Helper()
	ctx := bpftest.SkbCtx{Ifindex: uint32(w.ifidx[ifname])}
	if len(gsoSize) > 0 {
		ctx.GSOSize, ctx.GSOSegs = gsoSize[0], 2
	}
	return bpftest.RunIn(t, w.ns.Do, w.coll.Programs[module.ProgramIngress], frame, ctx)
}

// counter reads one of the data plane's counters by name.
func (w *gw) counter(t testing.TB, name string) uint64 {
	t.Helper()
	c, err := w.g.counters()
	if err != nil {
		t.Fatal(err)
	}
	return c[name]
}

// Frames.

func ip4(src, dst string, proto layers.IPProtocol, tos uint8) *layers.IPv4 {
	ip := bpftest.IPv4(src, dst, proto)
	ip.TOS = tos
	return ip
}

func tcpData(sport, dport uint16) *layers.TCP {
	return &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), ACK: true, Seq: 100, Ack: 1, Window: 500}
}

// lanTCP is a TCP segment from the LAN host with n payload bytes.
func lanTCP(t testing.TB, dst string, sport, dport uint16, tos uint8, n int) []byte {
	return bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), ip4("10.1.0.5", dst, layers.IPProtocolTCP, tos),
		tcpData(sport, dport), bpftest.Payload(make([]byte, n)))
}

func lanUDP(t testing.TB, dst string, sport, dport uint16, tos uint8) []byte {
	return bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), ip4("10.1.0.5", dst, layers.IPProtocolUDP, tos),
		bpftest.UDP(sport, dport), bpftest.Payload([]byte("hello")))
}

// greFrame wraps inner (an L3 packet) in outer IPv4 + GRE as a peer sends it.
func greFrame(t testing.TB, src, dst string, greProto layers.EthernetType, inner []byte) []byte {
	outer := ip4(src, dst, layers.IPProtocolGRE, 0)
	outer.Flags = layers.IPv4DontFragment
	return bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4), outer, &layers.GRE{Protocol: greProto}, bpftest.Payload(inner))
}

// ethBytes is an Ethernet header without the padding gopacket adds to a
// frame shorter than 60 bytes.
func ethBytes(dst, src net.HardwareAddr, typ layers.EthernetType) []byte {
	b := append(append([]byte{}, dst...), src...)
	return binary.BigEndian.AppendUint16(b, uint16(typ))
}

// l3 drops a frame's Ethernet header.
func l3(frame []byte) []byte { return frame[14:] }
