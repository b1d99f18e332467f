package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

func TestConnectError(t *testing.T) {
	const url = "ssl://192.0.2.1:10003"
	network := func(err error) error { return fmt.Errorf("%w : %w", packets.ErrorNetworkError, err) }
	verify := &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}
	alert := &net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}
	for _, c := range []struct {
		name   string
		secure bool
		err    error
		want   string
	}{
		{"unknown CA", true, network(verify), "unavailable: cluster broker " + url + ": tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{"alert", true, network(alert), "unavailable: cluster broker " + url + " refused the node's TLS connection (does it require a client certificate its CA signed? mqttCertFile, mqttKeyFile): remote error: tls: certificate required"},
		{"reset", true, network(&net.OpError{Op: "write", Err: syscall.ECONNRESET}), "unavailable: cluster broker " + url + " refused the node's TLS connection (does it require a client certificate its CA signed? mqttCertFile, mqttKeyFile): write: connection reset by peer"},
		{"EOF", true, network(io.EOF), "unavailable: cluster broker " + url + " refused the node's TLS connection (does it require a client certificate its CA signed? mqttCertFile, mqttKeyFile): EOF"},
		{"EOF, plain", false, network(io.EOF), "unavailable: cluster broker " + url + ": network Error : EOF"},
		{"credentials", false, packets.ErrorRefusedBadUsernameOrPassword, "unavailable: cluster broker " + url + " refused the node's credentials (mqttUsername, mqttPasswordFile, or the client certificate): bad user name or password"},
		{"not authorised", true, packets.ErrorRefusedNotAuthorised, "unavailable: cluster broker " + url + " refused the node's credentials (mqttUsername, mqttPasswordFile, or the client certificate): not Authorized"},
		{"refused", false, network(&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), "unavailable: cluster broker " + url + ": network Error : dial: connection refused"},
	} {
		got := connectError(url, c.secure, c.err)
		if !errors.Is(got, errdefs.ErrUnavailable) || got.Error() != c.want {
			t.Errorf("%s:\n%v\nwant\n%s", c.name, got, c.want)
		}
	}
}

func TestTLSFor(t *testing.T) {
	if tlsFor(nil, "ssl://192.0.2.1:10003") != nil {
		t.Fatal("no TLS made some")
	}
	in := &tls.Config{}
	got := tlsFor(in, "ssl://[fd00::7]:10003")
	if got.ServerName != "fd00::7" || got.MinVersion != tls.VersionTLS12 || in.ServerName != "" {
		t.Fatalf("ServerName %q, MinVersion %x; the configuration given changed: %q", got.ServerName, got.MinVersion, in.ServerName)
	}
	if got := tlsFor(&tls.Config{ServerName: "broker.example", MinVersion: tls.VersionTLS13}, "ssl://192.0.2.1:10003"); got.ServerName != "broker.example" || got.MinVersion != tls.VersionTLS13 {
		t.Fatalf("a ServerName or MinVersion given was replaced: %q %x", got.ServerName, got.MinVersion)
	}
}
