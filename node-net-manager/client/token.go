package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// WithToken makes the client send token as a bearer token (Authorization:
// Bearer), which the API on TCP accepts from any local user; "" sends none.
func (c *Client) WithToken(token string) *Client {
	c.token = token
	return c
}

// ReadToken reads a token file (the daemon's tokenFile). A missing or
// unreadable file is ok=false with no error unless required (a file the
// user named): the caller then goes without, as root or a member of the
// socket's group may.
func ReadToken(path string, required bool) (token string, ok bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if !required && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("token file: %w", err)
	}
	token = strings.TrimSpace(string(data))
	if token == "" {
		return "", false, fmt.Errorf("token file %s is empty", path)
	}
	return token, true, nil
}
