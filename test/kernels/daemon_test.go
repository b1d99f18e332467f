//go:build kernelmatrix

package kernels

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/client"
	"github.com/oakestra/netmanager/test/nstest"
)

// startTimeout is how long a daemon may take to answer /healthz. Under
// qemu's software emulation a restart that takes three module instances
// back (re-verifying their programs) took 16 s beside another test binary,
// past nstest.StartDaemon's 15 s; hence this daemon helper of our own.
const startTimeout = 2 * time.Minute

// lockedBuffer collects the daemon's output for the test's failure message.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// daemon is a NetManager in the node namespace, serving on a unix socket.
type daemon struct {
	Client *client.Client
	cmd    *exec.Cmd
	log    *lockedBuffer
	done   chan error
	exited bool
}

// startDaemon runs the daemon in node with nsenter (network namespace only)
// and waits for /healthz. Unless the test ends it first, it is stopped with
// SIGTERM at cleanup and must exit 0; its log is printed if the test failed.
func startDaemon(t *testing.T, node *nstest.Netns, pins, state string, args ...string) *daemon {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "nm.sock")
	full := append([]string{"--net=" + node.Path(), netmanagerBin, "--socket", sock, "--listen", "127.0.0.1:6000",
		"--token-file", filepath.Join(filepath.Dir(sock), "token"), "--state-dir", state, "--pin-dir", pins, "--modules-dir", modulesDir}, args...)
	d := &daemon{cmd: exec.Command("nsenter", full...), log: &lockedBuffer{}, done: make(chan error, 1), Client: client.New("", sock)}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start netmanager: %v", err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if !d.exited {
			d.Stop(t)
		}
		if t.Failed() {
			t.Logf("netmanager log (pid %d):\n%s", d.cmd.Process.Pid, d.log.String())
		}
	})
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := d.Client.Health(ctx)
		cancel()
		if err == nil {
			t.Logf("netmanager %v answered after %.1f s", args, time.Since(start).Seconds())
			return d
		}
		select {
		case werr := <-d.done:
			d.exited = true
			t.Fatalf("netmanager exited during start: %v", werr)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(start) > startTimeout {
			t.Fatalf("netmanager did not answer within %v: %v", startTimeout, err)
		}
	}
}

// Stop sends SIGTERM and requires a clean exit within a minute; past that
// SIGQUIT puts every goroutine's stack in the log.
func (d *daemon) Stop(t *testing.T) {
	t.Helper()
	if d.exited {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.exited = true
		if err != nil {
			t.Errorf("netmanager exited with %v", err)
		}
	case <-time.After(time.Minute):
		_ = d.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		d.exited = true
		t.Errorf("netmanager did not stop within a minute of SIGTERM; its goroutines are at the end of its log")
	}
}

// Kill ends the daemon with SIGKILL, as a crash would.
func (d *daemon) Kill(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Kill()
	err := <-d.done
	d.exited = true
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("killed netmanager: %v", err)
	}
}

// pinDir returns a fresh bpffs pin directory for the test's daemons, and
// fails the test if one is left behind at its end.
func pinDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("/sys/fs/bpf", nstest.UniqueName("nmk"))
	t.Cleanup(func() {
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("pin dir %s left behind", dir)
			_ = os.RemoveAll(dir)
		}
	})
	return dir
}
