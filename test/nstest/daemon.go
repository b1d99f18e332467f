package nstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/client"
)

// Binary returns the path of a built command: $env if set, else a fresh
// `go build` of pkg into dir.
func Binary(env, pkg, dir string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	return out, nil
}

// syncBuffer is a bytes.Buffer safe for the daemon's writes and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Daemon is a NetManager running in a node namespace.
type Daemon struct {
	Node   *Netns
	Socket string
	PinDir string // this daemon's bpffs pin directory, unique per daemon
	// TokenFile holds the bearer token of its API on TCP (the daemon
	// makes it at start, in the test's temp dir unless given).
	TokenFile string
	Client    *client.Client
	cmd       *exec.Cmd
	log       *syncBuffer
	done      chan error
	exited    bool
}

// StartDaemon runs bin in node (with nsenter, which switches only the network
// namespace, so namespaces the daemon mounts are visible to the test), serving
// on a unix socket in a temp dir. It waits for /healthz. Unless the test stops
// it first, it is stopped with SIGTERM at cleanup and must exit 0.
func StartDaemon(t testing.TB, bin string, node *Netns, args ...string) *Daemon {
	t.Helper()
	dir := t.TempDir()
	d := &Daemon{Node: node, Socket: filepath.Join(dir, "nm.sock"), PinDir: filepath.Join("/sys/fs/bpf", UniqueName("nm-test")),
		TokenFile: filepath.Join(dir, "token"), log: &syncBuffer{}, done: make(chan error, 1)}
	for i, a := range args { // an explicit --pin-dir (e.g. a restart reusing one) or --socket wins
		if a == "--pin-dir" && i+1 < len(args) {
			d.PinDir = args[i+1]
		}
		if a == "--socket" && i+1 < len(args) {
			d.Socket = args[i+1]
		}
		if a == "--token-file" && i+1 < len(args) {
			d.TokenFile = args[i+1]
		}
	}
	full := append([]string{"--net=" + node.Path(), bin, "--socket", d.Socket, "--listen", "127.0.0.1:6000", "--token-file", d.TokenFile,
		"--state-dir", filepath.Join(dir, "state"), "--pin-dir", d.PinDir, "--log-level", "debug"}, args...)
	d.cmd = exec.Command("nsenter", full...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start netmanager: %v", err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	d.Client = client.New("", d.Socket)
	t.Cleanup(func() {
		if !d.exited {
			d.Stop(t)
		}
		if _, err := os.Stat(d.PinDir); err == nil {
			t.Errorf("pin dir %s left behind", d.PinDir)
			_ = os.RemoveAll(d.PinDir)
		}
		if t.Failed() {
			t.Logf("netmanager log:\n%s", d.log.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := d.Client.Health(ctx)
		cancel()
		if err == nil {
			return d
		}
		select {
		case werr := <-d.done:
			d.exited = true
			t.Fatalf("netmanager exited during start: %v\n%s", werr, d.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("netmanager did not answer within 15s: %v\n%s", err, d.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Token is the bearer token of the daemon's API on TCP.
func (d *Daemon) Token(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(d.TokenFile)
	if err != nil {
		t.Fatalf("the daemon's token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// PID is the daemon's process ID.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Log returns what the daemon has logged so far.
func (d *Daemon) Log() string { return d.log.String() }

// Stop sends SIGTERM and requires a clean exit within 30 s.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if d.exited {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.exited = true
		if err != nil {
			t.Errorf("netmanager exited with %v\n%s", err, d.log.String())
		}
	case <-time.After(30 * time.Second):
		// SIGQUIT makes the Go runtime write every goroutine's stack to
		// the log, which the failure prints: where the shutdown hangs.
		_ = d.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		d.exited = true
		t.Errorf("netmanager did not stop within 30s of SIGTERM; its goroutines at SIGQUIT are at the end of its log")
	}
}

// Kill ends the daemon with SIGKILL, as a crash would.
func (d *Daemon) Kill(t testing.TB) {
	t.Helper()
	_ = d.cmd.Process.Kill()
	err := <-d.done
	d.exited = true
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("killed netmanager: %v", err)
	}
}
