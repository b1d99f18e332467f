package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// SecureBrokerURL is BrokerURL for a broker that speaks MQTT over TLS: the
// same host and port, with the ssl:// scheme.
func SecureBrokerURL(addr string) (string, error) {
	u, err := BrokerURL(addr)
	if err != nil {
		return "", err
	}
	return "ssl://" + u[len("tcp://"):], nil
}

// brokerURL is the URL Connect dials: ssl:// when o has a TLS
// configuration, else tcp://.
func brokerURL(o Options) (string, error) {
	if o.TLS != nil {
		return SecureBrokerURL(o.Broker)
	}
	return BrokerURL(o.Broker)
}

// tlsFor is tc for the broker at url: a copy whose ServerName is url's
// host unless tc names one, so the broker's certificate is checked against
// the address the node dials (an IP against the certificate's IP SANs).
func tlsFor(tc *tls.Config, url string) *tls.Config {
	if tc == nil {
		return nil
	}
	tc = tc.Clone()
	if tc.ServerName == "" {
		if host, _, err := net.SplitHostPort(url[len("ssl://"):]); err == nil {
			tc.ServerName = host
		}
	}
	if tc.MinVersion < tls.VersionTLS12 {
		tc.MinVersion = tls.VersionTLS12
	}
	return tc
}

// connectError says why the broker at url did not take the node: its
// certificate failed verification (the verification's own words), it
// refused the node's TLS connection (an alert, or, as TLS 1.3 brokers
// check a client certificate after the handshake, a connection closed
// under the node's CONNECT: usually a client certificate missing or signed
// by a CA it does not trust), it refused the node's credentials, or it
// could not be reached. Every one is an errdefs.ErrUnavailable naming the
// broker.
func connectError(url string, secure bool, err error) error {
	var verify *tls.CertificateVerificationError
	var op *net.OpError
	switch {
	case errors.As(err, &verify):
		return fmt.Errorf("%w: cluster broker %s: %v", errdefs.ErrUnavailable, url, verify)
	case secure && (errors.As(err, &op) && op.Op == "remote error" || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)):
		return fmt.Errorf("%w: cluster broker %s refused the node's TLS connection (does it require a client certificate its CA signed? mqttCertFile, mqttKeyFile): %v",
			errdefs.ErrUnavailable, url, cause(err))
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		return fmt.Errorf("%w: cluster broker %s refused the node's credentials (mqttUsername, mqttPasswordFile, or the client certificate): %v",
			errdefs.ErrUnavailable, url, err)
	}
	return fmt.Errorf("%w: cluster broker %s: %v", errdefs.ErrUnavailable, url, err)
}

// cause is what failed under paho's "network Error : <cause>".
func cause(err error) error {
	if m, ok := err.(interface{ Unwrap() []error }); ok && len(m.Unwrap()) > 0 {
		return m.Unwrap()[len(m.Unwrap())-1]
	}
	return err
}
