package main

import (
	"os"

	"github.com/oakestra/netmanager/node-net-manager/client"
)

// tokenEnv names the token file when --token-file does not.
const tokenEnv = "NETMANAGER_TOKEN_FILE"

// defaultTokenFile is the daemon's default tokenFile.
const defaultTokenFile = "/etc/netmanager/token"

// useToken makes c send the API's bearer token over TCP: from the file
// --token-file or $NETMANAGER_TOKEN_FILE names (which must be readable),
// else from the daemon's default file when this user may read it (root, or
// whom the operator let); without one, c sends none, and the daemon
// answers only root and members of its socket's group.
func useToken(c *client.Client, flagFile string) error {
	path, required := flagFile, flagFile != ""
	if !required {
		path, required = os.Getenv(tokenEnv), os.Getenv(tokenEnv) != ""
	}
	if !required {
		path = defaultTokenFile
	}
	tok, ok, err := client.ReadToken(path, required)
	if err != nil {
		return err
	}
	if ok {
		c.WithToken(tok)
	}
	return nil
}
