package clusterstub

import (
	"net/netip"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
)

// The addresses a real Oakestra cluster hands out, in its order (the root
// service manager's network/subnetwork_management.py): one IPv4 pool for
// round-robin and instance IPs alike, from 10.30.0.0 up, the last octet
// stepping modulo 254 (.254 and .255 never used, .0 is); IPv6 instance IPs
// from fdff:: up and round-robin IPs from fdff:2000:: up, each counting in
// its low bytes. Node subnets come from 10.18.0.0 in /26 steps and fc00::
// in /120 steps (NodeSubnet).
var (
	firstIP      = netip.MustParseAddr("10.30.0.0")
	firstIPv6    = netip.MustParseAddr("fdff::")
	firstRRIPv6  = netip.MustParseAddr("fdff:2000::")
	firstNode    = netip.MustParseAddr("10.18.0.0")
	firstNodeV6  = netip.MustParseAddr("fc00::")
	nodeStepV4   = 64
	nodeStepV6   = 256
	octetsPerRow = 254
)

// pools are the stand-in's address allocators; the caller holds Manager.mu.
type pools struct {
	v4, v6, rr6 int // how many each has handed out
}

// ipv4 is the next address of the shared IPv4 pool.
func (p *pools) ipv4() string {
	n := p.v4
	p.v4++
	b := firstIP.As4()
	b[2], b[3] = byte(n/octetsPerRow), byte(n%octetsPerRow)
	return netip.AddrFrom4(b).String()
}

// instanceV6 is the next IPv6 instance IP.
func (p *pools) instanceV6() string {
	p.v6++
	return addV6(firstIPv6, p.v6-1)
}

// rrV6 is the next IPv6 round-robin IP.
func (p *pools) rrV6() string {
	p.rr6++
	return addV6(firstRRIPv6, p.rr6-1)
}

func addV6(base netip.Addr, n int) string {
	b := base.As16()
	for i := 15; i >= 8 && n > 0; i-- {
		n += int(b[i])
		b[i], n = byte(n%256), n/256
	}
	return netip.AddrFrom16(b).String()
}

// NodeSubnet is the i-th node subnet (from 0) a real cluster hands out:
// 10.18.0.0, 10.18.0.64, … and fc00::, fc00::100, …
func NodeSubnet(i int) cluster.SubnetResult {
	b := firstNode.As4()
	off := i * nodeStepV4
	b[1] += byte(off >> 16)
	b[2], b[3] = byte(off>>8), byte(off)
	return cluster.SubnetResult{Address: netip.AddrFrom4(b).String(), AddressV6: addV6(firstNodeV6, i*nodeStepV6)}
}
