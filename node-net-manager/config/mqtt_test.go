package config_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/config"
	"github.com/oakestra/netmanager/test/clusterstub"
)

// The mqtt* keys: TLS with a CA and a client certificate, with a client
// certificate only (the system's CAs), credentials, and plain MQTT.
func TestMQTT(t *testing.T) {
	certs := clusterstub.NewCerts(t, "192.0.2.1")
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	if m, err := c.MQTT(); err != nil || m.TLS != nil || m.Username != "" {
		t.Fatalf("no mqtt keys: %+v %v", m, err)
	}
	c.MQTTCAFile, c.MQTTCertFile, c.MQTTKeyFile, c.MQTTUsername, c.MQTTPasswordFile = certs.CA, certs.ClientCert, certs.ClientKey, "node", pw
	m, err := c.MQTT()
	if err != nil || m.TLS == nil || m.TLS.RootCAs == nil || len(m.TLS.Certificates) != 1 || m.TLS.MinVersion != tls.VersionTLS12 ||
		m.Username != "node" || m.Password != "s3cret" {
		t.Fatalf("every mqtt key: %+v %v", m, err)
	}
	if _, err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.MQTTCAFile = ""
	if m, err := c.MQTT(); err != nil || m.TLS == nil || m.TLS.RootCAs != nil || len(m.TLS.Certificates) != 1 {
		t.Fatalf("a client certificate only: %+v %v", m, err)
	}
}

// Every bad mqtt* setting is refused at start, naming its key.
func TestMQTTNamesTheKey(t *testing.T) {
	certs := clusterstub.NewCerts(t, "192.0.2.1")
	dir := t.TempDir()
	junk, empty := filepath.Join(dir, "junk.pem"), filepath.Join(dir, "empty")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	for _, c := range []struct {
		mutate func(*config.Config)
		want   string
	}{
		{func(c *config.Config) { c.MQTTCAFile = missing }, "mqttCAFile: open " + missing + ": no such file or directory"},
		{func(c *config.Config) { c.MQTTCAFile = junk }, "mqttCAFile " + junk + ": no PEM certificate in it"},
		{func(c *config.Config) { c.MQTTCertFile = certs.ClientCert }, "mqttCertFile and mqttKeyFile: give both"},
		{func(c *config.Config) { c.MQTTKeyFile = certs.ClientKey }, "mqttCertFile and mqttKeyFile: give both"},
		{func(c *config.Config) { c.MQTTCertFile, c.MQTTKeyFile = certs.ClientCert, certs.ServerKey },
			"mqttCertFile " + certs.ClientCert + ", mqttKeyFile " + certs.ServerKey + ": tls: private key does not match public key"},
		{func(c *config.Config) { c.MQTTCertFile, c.MQTTKeyFile = missing, certs.ClientKey }, "mqttCertFile " + missing},
		{func(c *config.Config) { c.MQTTPasswordFile = empty }, "mqttPasswordFile: give mqttUsername too"},
		{func(c *config.Config) { c.MQTTUsername, c.MQTTPasswordFile = "node", missing }, "mqttPasswordFile: open " + missing},
		{func(c *config.Config) { c.MQTTUsername, c.MQTTPasswordFile = "node", empty }, "mqttPasswordFile " + empty + ": empty"},
	} {
		cfg := config.Default()
		c.mutate(&cfg)
		_, err := cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
}
