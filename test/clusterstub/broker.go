package clusterstub

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/oakestra/netmanager/test/nstest"
)

// Broker is a mosquitto the test started; it ends it by PID.
type Broker struct {
	Addr string // host:port
	cmd  *exec.Cmd
	ns   *nstest.Netns
}

// StartBroker runs mosquitto listening only on addr (host:port), inside ns
// when ns is not nil, until the test ends or Stop.
func StartBroker(tb testing.TB, ns *nstest.Netns, addr string) *Broker {
	tb.Helper()
	return startBroker(tb, ns, addr, "", true)
}

// StartPasswordBroker is StartBroker taking only clients that log in as
// user with password (a mosquitto password_file).
func StartPasswordBroker(tb testing.TB, ns *nstest.Netns, addr, user, password string) *Broker {
	tb.Helper()
	file := filepath.Join(tb.TempDir(), "passwords")
	if out, err := exec.Command("mosquitto_passwd", "-c", "-b", file, user, password).CombinedOutput(); err != nil {
		tb.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	return startBroker(tb, ns, addr, fmt.Sprintf("password_file %s\nuser root\n", file), false)
}

// StartTLSBroker is StartBroker with MQTT over TLS only: the broker shows
// certs' server certificate and takes only clients with a certificate
// certs' CA signed (require_certificate).
func StartTLSBroker(tb testing.TB, ns *nstest.Netns, addr string, certs *Certs) *Broker {
	tb.Helper()
	// user root: mosquitto started as root drops to its own user before it
	// reads the files, which are in the test's private directory.
	return startBroker(tb, ns, addr, fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\nuser root\n",
		certs.CA, certs.ServerCert, certs.ServerKey), true)
}

// startBroker runs mosquitto with listener lines extra (after the
// listener's own), taking anonymous clients or not.
func startBroker(tb testing.TB, ns *nstest.Netns, addr, extra string, anonymous bool) *Broker {
	tb.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		tb.Fatal(err)
	}
	conf := filepath.Join(tb.TempDir(), "mosquitto.conf")
	text := fmt.Sprintf("listener %s %s\n%sallow_anonymous %t\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n", port, host, extra, anonymous)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		tb.Fatal(err)
	}
	b := &Broker{Addr: addr, ns: ns}
	args := []string{"mosquitto", "-c", conf}
	if ns != nil {
		args = append([]string{"ip", "netns", "exec", ns.Name}, args...)
	}
	b.cmd = exec.Command(args[0], args[1:]...)
	b.cmd.Stderr = &prefixed{tb: tb}
	if err := b.cmd.Start(); err != nil {
		tb.Fatalf("start mosquitto (make deps installs it): %v", err)
	}
	tb.Cleanup(b.Stop)
	if err := b.waitListening(5 * time.Second); err != nil {
		tb.Fatal(err)
	}
	return b
}

// waitListening waits until the broker accepts connections.
func (b *Broker) waitListening(within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		var c net.Conn
		err := b.dial(func() (err error) { c, err = net.DialTimeout("tcp", b.Addr, 200*time.Millisecond); return err })
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("mosquitto did not listen on %s within %v", b.Addr, within)
}

func (b *Broker) dial(fn func() error) error {
	if b.ns == nil {
		return fn()
	}
	return b.ns.Do(fn)
}

// Stop ends the broker (by its PID) and waits for it; again is a no-op.
func (b *Broker) Stop() {
	if b.cmd == nil || b.cmd.Process == nil || b.cmd.ProcessState != nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-done
	}
}

// prefixed logs the broker's lines to the test's log.
type prefixed struct{ tb testing.TB }

func (p *prefixed) Write(b []byte) (int, error) {
	p.tb.Logf("mosquitto: %s", b)
	return len(b), nil
}
