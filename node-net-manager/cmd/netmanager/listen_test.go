package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/api"
)

func TestLoadTokenMakesOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "token")
	tok, made, err := loadToken(path)
	if err != nil || !made || len(tok) != 64 {
		t.Fatalf("loadToken on no file: %q %v %v", tok, made, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("made token file: %v %v, want mode 0600", st.Mode(), err)
	}
	again, made, err := loadToken(path)
	if err != nil || made || again != tok {
		t.Fatalf("second start: %q made %v %v, want the same token %q", again, made, err, tok)
	}
	other, _, err := loadToken(filepath.Join(t.TempDir(), "token"))
	if err != nil || other == tok {
		t.Fatalf("another file's token %q equals the first: %v", other, err)
	}
}

func TestLoadTokenUsesExistingOrRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "  operator-chosen-token-123\n", 0o600)
	if tok, made, err := loadToken(good); err != nil || made || tok != "operator-chosen-token-123" {
		t.Fatalf("an operator's file: %q %v %v", tok, made, err)
	}
	if tok, _, err := loadToken(write("ro", "operator-chosen-token-123", 0o400)); err != nil || tok != "operator-chosen-token-123" {
		t.Errorf("a 0400 file: %q %v", tok, err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{write("group", "operator-chosen-token-123", 0o640), "mode 0640 lets other users read or write the token; run chmod 600"},
		{write("world", "operator-chosen-token-123", 0o604), "mode 0604 lets other users"},
		{write("gw", "operator-chosen-token-123", 0o620), "mode 0620 lets other users"},
		{write("short", "short\n", 0o600), "want one token of at least 16 printable characters"},
		{write("empty", "", 0o600), "want one token of at least 16"},
		{write("spaces", "operator chosen token 123", 0o600), "without spaces"},
		{link, "not a regular file"},
		{dir, "not a regular file"},
	} {
		_, _, err := loadToken(c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "tokenFile "+c.path) {
			t.Errorf("%s: %v, want %q naming the key and file", c.path, err, c.want)
		}
	}
	st, _ := os.Stat(good)
	if err := tokenFileSafe(good, st, 1000); err == nil || !strings.Contains(err.Error(), "owned by uid 0, not by the NetManager's user (uid 1000)") {
		t.Errorf("another owner: %v", err)
	}
}

// requireRoot fails (never skips) a test that needs root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root (sock_diag of other users' sockets, setpriv)")
	}
}

// The kernel names the user of each loopback TCP connection's client
// socket, on IPv4 and IPv6: root for a socket this process made, nobody
// for curl run as nobody; the daemon's own end is never taken for it.
func TestKernelIdentityTCP(t *testing.T) {
	requireRoot(t)
	id, err := newKernelIdentity("")
	if err != nil {
		t.Fatal(err)
	}
	defer id.Close()
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		url := "http://" + ln.Addr().String() + "/"
		c, err := net.Dial("tcp", ln.Addr().String()) // this process: root
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if p := id.Peer(accept(t, ln)); p.Transport != api.TransportTCP || !p.Known || p.UID != 0 {
			t.Errorf("%s, a root socket: %+v, want uid 0", addr, p)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		curl := exec.CommandContext(ctx, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "curl", "-s", "-m", "5", url)
		if err := curl.Start(); err != nil {
			t.Fatal(err)
		}
		if p := id.Peer(accept(t, ln)); !p.Known || p.UID != 65534 {
			t.Errorf("%s, curl as nobody: %+v, want uid 65534", addr, p)
		}
		_ = curl.Process.Kill() // ours, by PID
		_ = curl.Wait()
	}
}

func accept(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A connection that is gone from the kernel's tables has no known peer.
func TestKernelIdentityTCPGone(t *testing.T) {
	requireRoot(t)
	id, err := newKernelIdentity("")
	if err != nil {
		t.Fatal(err)
	}
	defer id.Close()
	c := &net.TCPConn{}
	if p := id.Peer(c); p.Known {
		t.Errorf("a closed connection: %+v", p)
	}
	if _, err := id.tcpOwner(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2}); err == nil {
		t.Error("a socket that does not exist was found")
	}
	if _, err := id.tcpOwner(&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2}); err == nil || !strings.Contains(err.Error(), "not a loopback") {
		t.Errorf("a non-loopback peer: %v", err)
	}
}

// The unix socket's peer is named by SO_PEERCRED; the API's group is the
// socket file's, and its members those of the group database.
func TestKernelIdentityUnix(t *testing.T) {
	requireRoot(t)
	path := filepath.Join(t.TempDir(), "nm.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	id := &kernelIdentity{socket: path}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if p := id.Peer(s); p.Transport != api.TransportUnix || !p.Known || p.UID != 0 || int(p.PID) != os.Getpid() {
		t.Errorf("unix peer %+v, want uid 0 pid %d", p, os.Getpid())
	}
	if err := os.Chown(path, 0, 65534); err != nil {
		t.Fatal(err)
	}
	g, ok := id.Group()
	if !ok || g.GID != 65534 {
		t.Errorf("group %+v %v, want gid 65534", g, ok)
	}
	if !id.Member(65534, 65534) || id.Member(0, 65534) {
		t.Errorf("membership of group 65534: nobody %v, root %v; want true, false", id.Member(65534, 65534), id.Member(0, 65534))
	}
	if _, ok := (&kernelIdentity{}).Group(); ok {
		t.Error("a group without a socket")
	}
}
