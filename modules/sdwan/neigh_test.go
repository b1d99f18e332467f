package main

import (
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// queuedDatagram sends a datagram to addr from inside the gateway's namespace and
// returns the socket and its bytes not yet freed by the kernel (SIOCOUTQ).
func (w *gw) queuedDatagram(t *testing.T, addr string) (*net.UDPConn, func() int) {
	t.Helper()
	var c *net.UDPConn
	if err := w.ns.Do(func() error {
		conn, err := net.Dial("udp4", addr)
		if err != nil {
			return err
		}
		c = conn.(*net.UDPConn)
		_, err = c.Write(make([]byte, 1000))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return c, func() int {
		var n int
		var ierr error
		if err := raw.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil || ierr != nil {
			t.Fatal(err, ierr)
		}
		return n
	}
}

// A WAN going down frees the packets waiting for its next hop to answer
// ARP (which would hold TCP's retransmissions back for 3 s) and deletes
// the next hop's entry; a permanent entry an operator made stays.
func TestDownWANReleasesNexthop(t *testing.T) {
	w := newGW(t, `[]`, `[]`, "")
	w.ns.MustExec(t, "ip", "link", "set", "wan1p", "down") // wan1 loses carrier: nothing answers
	// The kernel flushes wan1's neighbour entries when it handles the loss
	// of carrier, a moment later (linkwatch, after it sets the operstate):
	// a datagram sent before that would lose its entry to the flush, not to
	// the module.
	for i := 0; ; i++ {
		out := w.ns.MustExec(t, "ip", "-o", "link", "show", "wan1")
		if strings.Contains(out, "state LOWERLAYERDOWN") || strings.Contains(out, "state DOWN") {
			break
		}
		if i == 200 {
			t.Fatalf("wan1 never went down: %s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	_, outq := w.queuedDatagram(t, "192.0.2.2:9")
	if n := outq(); n == 0 {
		t.Fatal("the datagram is not waiting for ARP; the test shows nothing")
	}
	if nb := w.ns.MustExec(t, "ip", "neigh", "show", "192.0.2.2", "dev", "wan1"); !strings.Contains(nb, "INCOMPLETE") {
		t.Fatalf("no unresolved entry: %q", nb)
	}
	w.setUp(t, 0, false)
	if n := outq(); n != 0 {
		t.Fatalf("%d bytes still queued after WAN 1 went down", n)
	}
	if nb := w.ns.MustExec(t, "ip", "neigh", "show", "192.0.2.2", "dev", "wan1"); strings.TrimSpace(nb) != "" {
		t.Fatalf("the next hop's entry is left: %q", nb)
	}

	w.ns.MustExec(t, "ip", "neigh", "add", "198.51.100.2", "lladdr", "02:00:00:00:02:02", "dev", "wan2", "nud", "permanent")
	w.setUp(t, 1, false)
	if nb := w.ns.MustExec(t, "ip", "neigh", "show", "198.51.100.2", "dev", "wan2"); !strings.Contains(nb, "PERMANENT") {
		t.Fatalf("a permanent entry was deleted: %q", nb)
	}
}
