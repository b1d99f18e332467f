package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// DefaultTokenFile is where the bearer token of the API on TCP is kept
// (made at first start, readable by root only).
const DefaultTokenFile = "/etc/netmanager/token"

// APIAccess checks the keys that say who reaches the API on TCP: listen
// must be a loopback address (the daemon asks the kernel which user owns
// each connection, which it can only do for its own host) unless the API
// on TCP is served over TLS with client certificates (APITLS), and
// tokenFile an absolute path when TCP is on.
func (c Config) APIAccess() error {
	tc, err := c.APITLS()
	if err != nil {
		return err
	}
	if c.Listen == "" {
		return nil
	}
	if err := loopbackListen(c.Listen); err != nil && tc == nil {
		return fmt.Errorf("listen %q: %w; or serve it over TLS to callers with client certificates (tlsCert, tlsKey, tlsClientCA)", c.Listen, err)
	}
	if !strings.HasPrefix(c.TokenFile, "/") {
		return fmt.Errorf("tokenFile %q: must be an absolute path (the API on TCP needs its bearer token)", c.TokenFile)
	}
	return nil
}

// loopbackListen says why addr (host:port) is not a loopback address to
// listen on, or nil when it is.
func loopbackListen(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return fmt.Errorf("the API on TCP listens on loopback only (127.0.0.1, ::1 or localhost), "+
			"where the NetManager can tell which user each connection belongs to; %q is not loopback "+
			"(reach the API from elsewhere through the unix socket, e.g. over ssh)", host)
	}
	return nil
}

// APITLS is the TLS configuration of the API on TCP, nil when tlsCert,
// tlsKey and tlsClientCA are not set: the daemon's certificate and a
// client certificate tlsClientCA signed, required and verified on every
// connection (TLS 1.2 at least).
func (c Config) APITLS() (*tls.Config, error) {
	set := 0
	for _, v := range []string{c.TLSCert, c.TLSKey, c.TLSClientCA} {
		if v != "" {
			set++
		}
	}
	switch {
	case set == 0:
		return nil, nil
	case set < 3:
		return nil, errors.New("tlsCert, tlsKey and tlsClientCA: give all three (the API's certificate, its key, the CA of its callers' certificates) or none")
	case c.Listen == "":
		return nil, errors.New("tlsCert, tlsKey and tlsClientCA: the API on TCP is off (listen \"\")")
	}
	pair, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("tlsCert %s, tlsKey %s: %w", c.TLSCert, c.TLSKey, err)
	}
	pem, err := os.ReadFile(c.TLSClientCA)
	if err != nil {
		return nil, fmt.Errorf("tlsClientCA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tlsClientCA %s: no PEM certificate in it", c.TLSClientCA)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}, nil
}
