package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// DefaultTokenFile is where the bearer token of the API on TCP is kept
// (made at first start, readable by root only).
const DefaultTokenFile = "/etc/netmanager/token"

// APIAccess checks the keys that say who reaches the API on TCP: listen
// must be a loopback address (the daemon asks the kernel which user owns
// each connection, which it can only do for its own host), and tokenFile an
// absolute path when TCP is on.
func (c Config) APIAccess() error {
	if c.Listen == "" {
		return nil
	}
	if err := loopbackListen(c.Listen); err != nil {
		return fmt.Errorf("listen %q: %w", c.Listen, err)
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
