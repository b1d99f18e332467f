package nstest

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// UDPCounter counts the numbered datagrams a listener in a namespace gets.
type UDPCounter struct {
	mu   sync.Mutex
	seen map[uint64]bool
}

// CountUDP listens on addr inside ns until the test ends.
func CountUDP(t testing.TB, ns *Netns, addr string) *UDPCounter {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp4", addr); return }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	c := &UDPCounter{seen: map[uint64]bool{}}
	go func() {
		buf := make([]byte, 64)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n == 8 {
				c.mu.Lock()
				c.seen[binary.BigEndian.Uint64(buf)] = true
				c.mu.Unlock()
			}
		}
	}()
	return c
}

// Got is how many distinct datagrams arrived.
func (c *UDPCounter) Got() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// Reset forgets what arrived.
func (c *UDPCounter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.seen)
}

// SendUDP sends numbered datagrams from ns to addr, one flow, every
// interval until ctx ends; the function it returns waits for that and says
// how many were sent.
func SendUDP(t testing.TB, ctx context.Context, ns *Netns, addr string, every time.Duration) func() uint64 {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() (err error) { c, err = net.Dial("udp4", addr); return }); err != nil {
		t.Fatal(err)
	}
	var sent atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer c.Close()
		tick := time.NewTicker(every)
		defer tick.Stop()
		b := make([]byte, 8)
		for seq := uint64(0); ; seq++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			binary.BigEndian.PutUint64(b, seq)
			if _, err := c.Write(b); err == nil {
				sent.Add(1)
			}
		}
	}()
	return func() uint64 { <-done; return sent.Load() }
}
