package clusterstub

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs are the PEM files of a test's small PKI, in a temporary directory:
// a CA, a server certificate the CA signed for the broker's IPs (IP SANs),
// a client certificate it signed, and a second CA that signed nothing the
// broker shows (the wrong CA).
type Certs struct {
	CA, WrongCA           string // CA certificates
	ServerCert, ServerKey string
	ClientCert, ClientKey string
	// OtherClientCert and OtherClientKey are a client certificate the wrong
	// CA signed (one the broker does not trust).
	OtherClientCert, OtherClientKey string
}

// NewCerts makes the files for a broker reachable at ips.
func NewCerts(tb testing.TB, ips ...string) *Certs {
	tb.Helper()
	dir := tb.TempDir()
	c := &Certs{}
	ca, caKey := newCA(tb, dir, "ca", "netmanager test CA", &c.CA)
	wrong, wrongKey := newCA(tb, dir, "wrong-ca", "netmanager wrong CA", &c.WrongCA)
	srv := &x509.Certificate{Subject: pkix.Name{CommonName: "cluster broker"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, ip := range ips {
		srv.IPAddresses = append(srv.IPAddresses, net.ParseIP(ip))
	}
	c.ServerCert, c.ServerKey = issue(tb, dir, "server", srv, ca, caKey)
	cli := &x509.Certificate{Subject: pkix.Name{CommonName: "node"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	c.ClientCert, c.ClientKey = issue(tb, dir, "client", cli, ca, caKey)
	c.OtherClientCert, c.OtherClientKey = issue(tb, dir, "other-client", cli, wrong, wrongKey)
	return c
}

// ClientTLS is a TLS configuration trusting the CA with the client
// certificate, as the stand-in cluster manager connects.
func (c *Certs) ClientTLS(tb testing.TB) *tls.Config {
	tb.Helper()
	pair, err := tls.LoadX509KeyPair(c.ClientCert, c.ClientKey)
	if err != nil {
		tb.Fatal(err)
	}
	pem, err := os.ReadFile(c.CA)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

func newCA(tb testing.TB, dir, name, cn string, path *string) (*x509.Certificate, *ecdsa.PrivateKey) {
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	*path, _ = issue(tb, dir, name, tmpl, nil, nil)
	der, err := os.ReadFile(*path)
	if err != nil {
		tb.Fatal(err)
	}
	b, _ := pem.Decode(der)
	ca, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(dir, name+".key"))
	if err != nil {
		tb.Fatal(err)
	}
	kb, _ := pem.Decode(key)
	k, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return ca, k
}

// issue writes <name>.crt and <name>.key: tmpl with a new key, signed by
// parent (itself when nil).
func issue(tb testing.TB, dir, name string, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (cert, key string) {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		tb.Fatal(err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	tmpl.KeyUsage |= x509.KeyUsageDigitalSignature
	if parent == nil {
		parent, parentKey = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &k.PublicKey, parentKey)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	cert, key = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{cert, "CERTIFICATE", der}, {key, "EC PRIVATE KEY", kder}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return cert, key
}
