package ipam

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
)

// ErrExhausted is returned when a pool has no free address left.
var ErrExhausted = errors.New("address pool exhausted")

// maxPoolBits bounds the number of host bits a pool iterates over (16M addresses).
const maxPoolBits = 24

// Pool hands out the usable host addresses of one prefix. For IPv4 the network
// and broadcast addresses are never handed out. A Pool is not safe for
// concurrent use; its owner serialises access.
type Pool struct {
	prefix   netip.Prefix
	first    uint64 // first usable offset
	last     uint64 // last usable offset
	next     uint64 // next-fit cursor
	reserved map[netip.Addr]bool
	used     map[netip.Addr]bool
}

// NewPool returns a pool over prefix with the given addresses held back (e.g. the gateway).
func NewPool(prefix netip.Prefix, reserved ...netip.Addr) (*Pool, error) {
	prefix = prefix.Masked()
	if !prefix.IsValid() {
		return nil, fmt.Errorf("invalid prefix")
	}
	hostBits := prefix.Addr().BitLen() - prefix.Bits()
	if hostBits > maxPoolBits {
		hostBits = maxPoolBits
	}
	if hostBits < 2 {
		return nil, fmt.Errorf("prefix %s has no room for hosts", prefix)
	}
	p := &Pool{prefix: prefix, first: 1, last: (uint64(1) << hostBits) - 1, reserved: map[netip.Addr]bool{}, used: map[netip.Addr]bool{}}
	if prefix.Addr().Is4() {
		p.last-- // broadcast
	}
	p.next = p.first
	for _, a := range reserved {
		if !prefix.Contains(a) {
			return nil, fmt.Errorf("reserved address %s is outside %s", a, prefix)
		}
		p.reserved[a] = true
	}
	return p, nil
}

// Prefix returns the pool's prefix.
func (p *Pool) Prefix() netip.Prefix { return p.prefix }

// Allocate returns the next free address after the last one handed out.
func (p *Pool) Allocate() (netip.Addr, error) {
	size := p.last - p.first + 1
	for i := uint64(0); i < size; i++ {
		off := p.first + (p.next-p.first+i)%size
		a := AtOffset(p.prefix, off)
		if p.used[a] || p.reserved[a] {
			continue
		}
		p.used[a] = true
		p.next = off + 1
		if p.next > p.last {
			p.next = p.first
		}
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("%s: %w", p.prefix, ErrExhausted)
}

// Claim marks a specific address as used (re-adopting state); it fails if the
// address is outside the usable range, reserved or already used.
func (p *Pool) Claim(a netip.Addr) error {
	off, ok := Offset(p.prefix, a)
	if !ok || off < p.first || off > p.last || p.reserved[a] {
		return fmt.Errorf("address %s is not allocatable from %s", a, p.prefix)
	}
	if p.used[a] {
		return fmt.Errorf("address %s is already in use", a)
	}
	p.used[a] = true
	return nil
}

// Release returns an address to the pool. Releasing a free address is a no-op.
func (p *Pool) Release(a netip.Addr) { delete(p.used, a) }

// InUse reports how many addresses are allocated.
func (p *Pool) InUse() int { return len(p.used) }

// Offset returns a's offset from the start of prefix.
func Offset(prefix netip.Prefix, a netip.Addr) (uint64, bool) {
	if !prefix.Contains(a) {
		return 0, false
	}
	base := new(big.Int).SetBytes(prefix.Masked().Addr().AsSlice())
	v := new(big.Int).SetBytes(a.AsSlice())
	d := v.Sub(v, base)
	if !d.IsUint64() {
		return 0, false
	}
	return d.Uint64(), true
}

// AtOffset returns the address at offset off from the start of prefix. The
// caller keeps off within the prefix.
func AtOffset(prefix netip.Prefix, off uint64) netip.Addr {
	base := prefix.Masked().Addr()
	b := base.AsSlice()
	v := new(big.Int).SetBytes(b)
	v.Add(v, new(big.Int).SetUint64(off))
	out := v.FillBytes(make([]byte, len(b)))
	a, _ := netip.AddrFromSlice(out)
	return a
}

// Pair returns the address at the same offset in other as a has in prefix:
// the node's IPv6 namespace address follows its IPv4 one.
func Pair(prefix netip.Prefix, a netip.Addr, other netip.Prefix) (netip.Addr, error) {
	off, ok := Offset(prefix, a)
	if !ok {
		return netip.Addr{}, fmt.Errorf("address %s is outside %s", a, prefix)
	}
	hostBits := other.Addr().BitLen() - other.Bits()
	if hostBits < 64 && off >= uint64(1)<<hostBits {
		return netip.Addr{}, fmt.Errorf("offset %d of %s does not fit in %s", off, a, other)
	}
	return AtOffset(other, off), nil
}
