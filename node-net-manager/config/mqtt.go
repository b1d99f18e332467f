package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MQTT is how the node meets the cluster's broker, read from the mqtt*
// keys: TLS is nil for plain MQTT.
type MQTT struct {
	TLS                *tls.Config
	Username, Password string
}

// MQTT reads the files the mqtt* keys name: MQTT over TLS when mqttCAFile
// or a client certificate is given (the CA's certificates are then the
// only ones the broker's may chain to; without mqttCAFile, the system's),
// and the credentials. The error names the key at fault.
func (c Config) MQTT() (MQTT, error) {
	var m MQTT
	if (c.MQTTCertFile == "") != (c.MQTTKeyFile == "") {
		return m, errors.New("mqttCertFile and mqttKeyFile: give both (a client certificate and its key) or neither")
	}
	if c.MQTTCAFile != "" || c.MQTTCertFile != "" {
		m.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if c.MQTTCAFile != "" {
		b, err := os.ReadFile(c.MQTTCAFile)
		if err != nil {
			return m, fmt.Errorf("mqttCAFile: %w", err)
		}
		m.TLS.RootCAs = x509.NewCertPool()
		if !m.TLS.RootCAs.AppendCertsFromPEM(b) {
			return m, fmt.Errorf("mqttCAFile %s: no PEM certificate in it", c.MQTTCAFile)
		}
	}
	if c.MQTTCertFile != "" {
		pair, err := tls.LoadX509KeyPair(c.MQTTCertFile, c.MQTTKeyFile)
		if err != nil {
			return m, fmt.Errorf("mqttCertFile %s, mqttKeyFile %s: %w", c.MQTTCertFile, c.MQTTKeyFile, err)
		}
		m.TLS.Certificates = []tls.Certificate{pair}
	}
	if c.MQTTPasswordFile != "" {
		if c.MQTTUsername == "" {
			return m, errors.New("mqttPasswordFile: give mqttUsername too")
		}
		b, err := os.ReadFile(c.MQTTPasswordFile)
		if err != nil {
			return m, fmt.Errorf("mqttPasswordFile: %w", err)
		}
		m.Password = strings.TrimRight(string(b), "\r\n")
		if m.Password == "" {
			return m, fmt.Errorf("mqttPasswordFile %s: empty", c.MQTTPasswordFile)
		}
	}
	m.Username = c.MQTTUsername
	return m, nil
}
