package main

import (
	"crypto/tls"
	"fmt"
	"net"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/config"
)

// apiAccess is who may use the API (docs/operator-guide.md, "API access and
// the audit trail"): the kernel's word on each connection's user, and with
// TCP on, the bearer token from tokenFile (made at the first start). close
// releases the sock_diag handle.
func apiAccess(cfg config.Config, log *logrus.Logger) (_ *api.Access, close func(), err error) {
	id, err := newKernelIdentity(cfg.Socket)
	if err != nil {
		return nil, nil, err
	}
	a := &api.Access{Identity: id, TokenFile: cfg.TokenFile, Audit: &api.Audit{}, Log: log}
	if cfg.Listen != "" {
		var made bool
		if a.Token, made, err = loadToken(cfg.TokenFile); err != nil {
			id.Close()
			return nil, nil, err
		}
		if made {
			log.WithField("tokenFile", cfg.TokenFile).Info("made the API's bearer token (mode 0600)")
		}
	}
	return a, id.Close, nil
}

// listenTCP listens on the API's TCP address, over TLS with client
// certificates when tlsCert, tlsKey and tlsClientCA are set (every
// connection must then show a certificate tlsClientCA signed before a
// request is read).
func listenTCP(cfg config.Config) (net.Listener, error) {
	tc, err := cfg.APITLS()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	if tc == nil {
		return ln, nil
	}
	return tls.NewListener(ln, tc), nil
}
