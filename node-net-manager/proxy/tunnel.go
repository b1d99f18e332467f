package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Tunnel is the inter-node tunnel's UDP socket, bound to the node's
// address, that can move to a new address under way (Rebind): readers and
// writers go on with the new socket. It is a net.PacketConn.
type Tunnel struct {
	mu     sync.Mutex
	conn   *net.UDPConn
	closed bool
}

// ListenTunnel binds the tunnel to addr.
func ListenTunnel(addr netip.AddrPort) (*Tunnel, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, fmt.Errorf("tunnel: bind %s: %w", addr, err)
	}
	return &Tunnel{conn: c}, nil
}

// Rebind moves the tunnel to addr: the new socket is bound first, then
// takes the old one's place, which is closed (a reader blocked on it goes
// on reading the new one). On error the tunnel stays where it was.
func (t *Tunnel) Rebind(addr netip.AddrPort) error {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return fmt.Errorf("tunnel: bind %s: %w", addr, err)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		c.Close()
		return fmt.Errorf("tunnel: rebind to %s: %w", addr, net.ErrClosed)
	}
	old := t.conn
	t.conn = c
	t.mu.Unlock()
	return old.Close()
}

// current returns the socket in use and whether the tunnel is closed.
func (t *Tunnel) current() (*net.UDPConn, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.conn, t.closed
}

// ReadFrom reads a datagram from the current socket; one replaced while
// it waited is left for its successor.
func (t *Tunnel) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		c, _ := t.current()
		n, from, err := c.ReadFrom(b)
		if err == nil {
			return n, from, nil
		}
		if nc, closed := t.current(); !closed && nc != c && errors.Is(err, net.ErrClosed) {
			continue // rebound meanwhile
		}
		return n, from, err
	}
}

// WriteTo sends a datagram from the current socket.
func (t *Tunnel) WriteTo(b []byte, addr net.Addr) (int, error) {
	c, _ := t.current()
	return c.WriteTo(b, addr)
}

// Close closes the tunnel for good.
func (t *Tunnel) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	return t.conn.Close()
}

// LocalAddr is the address the tunnel is bound to now.
func (t *Tunnel) LocalAddr() net.Addr {
	c, _ := t.current()
	return c.LocalAddr()
}

// AddrPort is LocalAddr as an address and port.
func (t *Tunnel) AddrPort() netip.AddrPort {
	ua, _ := t.LocalAddr().(*net.UDPAddr)
	if ua == nil {
		return netip.AddrPort{}
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// SetDeadline sets the current socket's deadlines (a rebound socket has none).
func (t *Tunnel) SetDeadline(d time.Time) error {
	c, _ := t.current()
	return c.SetDeadline(d)
}

// SetReadDeadline sets the current socket's read deadline.
func (t *Tunnel) SetReadDeadline(d time.Time) error {
	c, _ := t.current()
	return c.SetReadDeadline(d)
}

// SetWriteDeadline sets the current socket's write deadline.
func (t *Tunnel) SetWriteDeadline(d time.Time) error {
	c, _ := t.current()
	return c.SetWriteDeadline(d)
}
