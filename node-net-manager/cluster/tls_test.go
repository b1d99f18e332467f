package cluster_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/test/clusterstub"
)

func TestSecureBrokerURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"192.0.2.7", "ssl://192.0.2.7:10003"},
		{"192.0.2.7:8883", "ssl://192.0.2.7:8883"},
		{"[fd00::7]:8883", "ssl://[fd00::7]:8883"},
		{"", ""},
	} {
		if got, _ := cluster.SecureBrokerURL(c.in); got != c.want {
			t.Errorf("SecureBrokerURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// nodeTLS is the node's TLS configuration: RootCAs from ca (none: the
// system's), the client certificate when cert is not "".
func nodeTLS(t *testing.T, ca, cert, key string) *tls.Config {
	t.Helper()
	tc := &tls.Config{}
	if ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			t.Fatal(err)
		}
		tc.RootCAs = x509.NewCertPool()
		tc.RootCAs.AppendCertsFromPEM(b)
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc
}

// tlsBroker is a broker speaking MQTT over TLS only, on loopback, with the
// stand-in cluster manager connected by its client certificate.
func tlsBroker(t *testing.T) (*clusterstub.Certs, *clusterstub.Broker, *clusterstub.Manager) {
	t.Helper()
	certs := clusterstub.NewCerts(t, "127.0.0.1")
	b := clusterstub.StartTLSBroker(t, nil, freeAddr(t), certs)
	m := clusterstub.NewManagerTLS(t, nil, b.Addr, certs.ClientTLS(t), cluster.SubnetResult{Address: "10.18.1.0", AddressV6: "fd00:18:1::"})
	return certs, b, m
}

// With the CA that signed the broker's certificate and a client
// certificate it signed, the node joins over TLS: its subnet and a table
// query go both ways.
func TestConnectTLS(t *testing.T) {
	certs, b, m := tlsBroker(t)
	m.Service("app.ns.web.ns")
	c, err := cluster.Connect(ctx(t), cluster.Options{ClientID: "n1", Broker: b.Addr, TLS: nodeTLS(t, certs.CA, certs.ClientCert, certs.ClientKey)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if sn, err := c.Subnet(ctx(t)); err != nil || sn.Address != "10.18.1.0" {
		t.Fatalf("subnet over TLS: %+v %v", sn, err)
	}
	if err := c.Deployed(cluster.Deployed{AppName: "app.ns.web.ns", Status: "DEPLOYED", NsIP: "10.18.1.2", HostIP: "192.0.2.10", HostPort: "50103"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "service/deployed", func() bool { return len(m.Instances("app.ns.web.ns")) == 1 })
	if r, err := c.Query(ctx(t), cluster.TableQuery{Sname: "app.ns.web.ns"}); err != nil || len(r.InstanceList) != 1 || r.InstanceList[0].NamespaceIP != "10.18.1.2" {
		t.Fatalf("table query over TLS: %+v %v", r, err)
	}
}

// A broker whose certificate does not chain to the node's CA is refused,
// with the verification's own words, and nothing stays connected.
func TestConnectTLSWrongCA(t *testing.T) {
	certs, b, m := tlsBroker(t)
	_, err := cluster.Connect(ctx(t), cluster.Options{ClientID: "n1", Broker: b.Addr, ConnectTimeout: 3 * time.Second,
		TLS: nodeTLS(t, certs.WrongCA, certs.ClientCert, certs.ClientKey)})
	want := "unavailable: cluster broker ssl://" + b.Addr + ": tls: failed to verify certificate: x509: certificate signed by unknown authority"
	if !errors.Is(err, errdefs.ErrUnavailable) || err.Error() != want {
		t.Fatalf("a broker the CA did not sign:\n%v\nwant\n%s", err, want)
	}
	if msgs := m.Messages("subnet"); len(msgs) != 0 {
		t.Fatalf("the refused node reached the cluster: %v", msgs)
	}
}

// A broker whose certificate is for another address is refused too.
func TestConnectTLSWrongHost(t *testing.T) {
	certs := clusterstub.NewCerts(t, "192.0.2.1")
	b := clusterstub.StartTLSBroker(t, nil, freeAddr(t), certs)
	_, err := cluster.Connect(ctx(t), cluster.Options{ClientID: "n1", Broker: b.Addr, ConnectTimeout: 3 * time.Second,
		TLS: nodeTLS(t, certs.CA, certs.ClientCert, certs.ClientKey)})
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "ssl://"+b.Addr+": tls: failed to verify certificate: x509: certificate is valid for 192.0.2.1, not 127.0.0.1") {
		t.Fatalf("a broker certificate for another IP: %v", err)
	}
}

// A broker that requires a client certificate refuses a node without one,
// or with one its CA did not sign; the error says so.
func TestConnectTLSClientCertRefused(t *testing.T) {
	certs, b, _ := tlsBroker(t)
	for _, c := range []struct {
		name      string
		cert, key string
	}{{"no client certificate", "", ""}, {"a client certificate of another CA", certs.OtherClientCert, certs.OtherClientKey}} {
		_, err := cluster.Connect(ctx(t), cluster.Options{ClientID: "n1", Broker: b.Addr, ConnectTimeout: 3 * time.Second,
			TLS: nodeTLS(t, certs.CA, c.cert, c.key)})
		if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "cluster broker ssl://"+b.Addr+" refused the node's TLS connection (does it require a client certificate its CA signed? mqttCertFile, mqttKeyFile): ") {
			t.Errorf("%s: %v", c.name, err)
		}
		t.Logf("%s: %v", c.name, err)
	}
}

// A broker that takes only known users: the node's credentials let it in;
// wrong ones, or none, are refused, the error saying so.
func TestConnectCredentials(t *testing.T) {
	b := clusterstub.StartPasswordBroker(t, nil, freeAddr(t), "node", "s3cret")
	c, err := cluster.Connect(ctx(t), cluster.Options{ClientID: "n1", Broker: b.Addr, Username: "node", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	for _, pw := range []string{"wrong", ""} {
		_, err := cluster.Connect(ctx(t), cluster.Options{ClientID: "n1", Broker: b.Addr, Username: "node", Password: pw, ConnectTimeout: 3 * time.Second})
		if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "cluster broker tcp://"+b.Addr+" refused the node's credentials (mqttUsername, mqttPasswordFile, or the client certificate): ") {
			t.Errorf("password %q: %v", pw, err)
		}
		t.Logf("password %q: %v", pw, err)
	}
}
