package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/oakestra/netmanager/node-net-manager/api"
)

// kernelIdentity asks the kernel who is at the other end of an API
// connection: SO_PEERCRED on the unix socket, sock_diag (inet_diag, by the
// exact 4-tuple) on loopback TCP; the API's group is the unix socket
// file's, its members those of the system's group database.
type kernelIdentity struct {
	// diag is a NETLINK_INET_DIAG handle opened in the daemon's network
	// namespace, the listener's: a TCP peer's socket is looked up there.
	diag   *netlink.Handle
	socket string // the unix socket's path; "" when it is off
}

// newKernelIdentity opens the sock_diag handle in the calling thread's
// network namespace, the daemon's.
func newKernelIdentity(socket string) (*kernelIdentity, error) {
	h, err := netlink.NewHandle(unix.NETLINK_INET_DIAG)
	if err != nil {
		return nil, fmt.Errorf("open sock_diag, to tell who connects to the API on TCP: %w", err)
	}
	return &kernelIdentity{diag: h, socket: socket}, nil
}

func (k *kernelIdentity) Close() { k.diag.Close() }

// Peer implements api.Identity.
func (k *kernelIdentity) Peer(c net.Conn) api.Peer {
	switch c := c.(type) {
	case *tls.Conn: // the handshake, before any request, verifies the client's certificate
		return api.Peer{Transport: api.TransportTLS, Known: true}
	case *net.UnixConn:
		return unixPeer(c)
	case *net.TCPConn:
		p := api.Peer{Transport: api.TransportTCP}
		uid, err := k.tcpOwner(c.RemoteAddr(), c.LocalAddr())
		if err != nil {
			p.Why = err.Error()
			return p
		}
		p.Known, p.UID = true, uid
		return p
	}
	return api.Peer{Transport: api.TransportUnknown}
}

// unixPeer is the unix socket's peer by SO_PEERCRED; the transport alone
// when the kernel does not say.
func unixPeer(c *net.UnixConn) api.Peer {
	p := api.Peer{Transport: api.TransportUnix}
	rc, err := c.SyscallConn()
	if err != nil {
		p.Why = err.Error()
		return p
	}
	var cred *unix.Ucred
	cerr := rc.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if err = errors.Join(cerr, err); err != nil {
		p.Why = "SO_PEERCRED: " + err.Error()
		return p
	}
	p.Known, p.UID, p.PID = true, cred.Uid, cred.Pid
	return p
}

// tcpOwner is the uid owning the TCP socket whose own address is client
// and whose peer is server: the client's end of an API connection (the
// other end, server to client, is the daemon's own).
func (k *kernelIdentity) tcpOwner(client, server net.Addr) (uint32, error) {
	c, ok1 := client.(*net.TCPAddr)
	s, ok2 := server.(*net.TCPAddr)
	if !ok1 || !ok2 {
		return 0, fmt.Errorf("not a TCP connection (%s to %s)", client, server)
	}
	if !c.IP.IsLoopback() {
		return 0, fmt.Errorf("%s is not a loopback address", c.IP)
	}
	var sk *netlink.Socket
	var err error
	for range 3 { // an interrupted dump is retried
		if sk, err = k.diag.SocketGet(c, s); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("sock_diag: no socket %s to %s in this network namespace: %w", c, s, err)
	}
	id := sk.ID
	if !id.Source.Equal(c.IP) || int(id.SourcePort) != c.Port || !id.Destination.Equal(s.IP) || int(id.DestinationPort) != s.Port {
		return 0, fmt.Errorf("sock_diag answered socket %s:%d to %s:%d, not %s to %s", id.Source, id.SourcePort, id.Destination, id.DestinationPort, c, s)
	}
	return sk.UID, nil
}

// Group implements api.Identity: the unix socket file's group, read at
// every call (an operator may chgrp the socket while the daemon runs).
func (k *kernelIdentity) Group() (api.Group, bool) {
	if k.socket == "" {
		return api.Group{}, false
	}
	st, err := os.Stat(k.socket)
	if err != nil {
		return api.Group{}, false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return api.Group{}, false
	}
	g := api.Group{GID: sys.Gid}
	if gr, err := user.LookupGroupId(strconv.FormatUint(uint64(sys.Gid), 10)); err == nil {
		g.Name = gr.Name
	}
	return g, true
}

// Member implements api.Identity by the system's user and group database:
// the user's primary group or a supplementary one.
func (k *kernelIdentity) Member(uid, gid uint32) bool {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return false
	}
	g := strconv.FormatUint(uint64(gid), 10)
	if u.Gid == g {
		return true
	}
	ids, err := u.GroupIds()
	return err == nil && slices.Contains(ids, g)
}
