package main

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/config"
	"github.com/oakestra/netmanager/test/clusterstub"
)

// With tlsCert, tlsKey and tlsClientCA the API on TCP answers only callers
// whose client certificate the CA signed, and they are allowed as "cert";
// a caller without one, with one another CA signed, or speaking plain HTTP
// gets no answer at all.
func TestListenTLS(t *testing.T) {
	certs := clusterstub.NewCerts(t, "127.0.0.1")
	cfg := config.Default()
	cfg.Listen, cfg.Socket = "127.0.0.1:0", ""
	cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA = certs.ServerCert, certs.ServerKey, certs.CA
	ln, err := listenTCP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id := &kernelIdentity{} // a TLS peer needs no kernel lookup
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })}
	peers := make(chan api.Peer, 8)
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateActive {
			peers <- id.Peer(c)
		}
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	url := "https://" + ln.Addr().String() + "/version"

	get := func(tc *tls.Config) error {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return errors.New(resp.Status)
		}
		return nil
	}
	if err := get(certs.ClientTLS(t)); err != nil {
		t.Fatalf("a client certificate the CA signed: %v", err)
	}
	if p := <-peers; p.Transport != api.TransportTLS || api.Decide(api.AuthInput{Peer: p}).WhoKind != "cert" {
		t.Fatalf("the TLS caller: %+v", p)
	}
	noCert := certs.ClientTLS(t)
	noCert.Certificates = nil
	otherCA := certs.ClientTLS(t)
	pair, err := tls.LoadX509KeyPair(certs.OtherClientCert, certs.OtherClientKey)
	if err != nil {
		t.Fatal(err)
	}
	otherCA.Certificates = []tls.Certificate{pair}
	for name, tc := range map[string]*tls.Config{"no client certificate": noCert, "a certificate another CA signed": otherCA} {
		if err := get(tc); err == nil {
			t.Errorf("%s: served", name)
		}
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + ln.Addr().String() + "/version")
	if err == nil && resp.StatusCode == 200 {
		t.Errorf("plain HTTP: served")
	}
}

// The TLS keys' checks: all three or none, files that
// load, and TLS only where TCP is on; with them a non-loopback address is
// allowed, without it is refused naming the way out.
func TestAPITLSConfig(t *testing.T) {
	certs := clusterstub.NewCerts(t, "127.0.0.1")
	notPEM := t.TempDir() + "/ca.pem"
	if err := os.WriteFile(notPEM, []byte("nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		listen, cert, key, ca string
		want                  string
	}{
		{"0.0.0.0:6000", certs.ServerCert, certs.ServerKey, certs.CA, ""},
		{"127.0.0.1:6000", certs.ServerCert, certs.ServerKey, certs.CA, ""},
		{"0.0.0.0:6000", "", "", "", "or serve it over TLS to callers with client certificates (tlsCert, tlsKey, tlsClientCA)"},
		{"0.0.0.0:6000", certs.ServerCert, certs.ServerKey, "", "give all three"},
		{"0.0.0.0:6000", certs.ServerCert, certs.ClientKey, certs.CA, "tls: private key does not match public key"},
		{"0.0.0.0:6000", certs.ServerCert, certs.ServerKey, notPEM, "no PEM certificate in it"},
		{"", certs.ServerCert, certs.ServerKey, certs.CA, "the API on TCP is off"},
	} {
		cfg := config.Default()
		cfg.Listen, cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA = c.listen, c.cert, c.key, c.ca
		_, err := cfg.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("listen %q cert %q key %q ca %q: %v, want %q", c.listen, c.cert, c.key, c.ca, err, c.want)
		}
	}
}
