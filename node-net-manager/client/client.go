// Package client is a Go client of the NetManager's HTTP API over TCP or a unix
// socket; netmanagerctl and the integration tests use it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/httpjson"
)

// Client talks to one NetManager.
type Client struct {
	base  string
	hc    *http.Client
	token string // sent as a bearer token when set (token.go)
}

// New returns a client for the API at addr (host:port or URL) or, when socket
// is set, at that unix socket.
func New(addr, socket string) *Client {
	tr := &http.Transport{}
	base := addr
	if socket != "" {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}
		base = "http://netmanager"
	} else if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{base: strings.TrimSuffix(base, "/"), hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// Error is a non-2xx answer.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message) }

// Raw sends body (may be nil) and returns the status and the response body.
func (c *Client) Raw(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// Do sends in as JSON (unless nil) and decodes a 2xx answer into out (unless nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	data, err := c.Send(ctx, method, path, body)
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(data, out)
}

// Send sends body (may be nil) and returns a 2xx answer's body as it came;
// any other status is an *Error with the daemon's message.
func (c *Client) Send(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	status, data, err := c.Raw(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	if status < 200 || status > 299 {
		return nil, errorFrom(status, data)
	}
	return data, nil
}

// Get returns a 2xx answer's body to GET path as it came (JSON or text).
func (c *Client) Get(ctx context.Context, path string) ([]byte, error) {
	return c.Send(ctx, http.MethodGet, path, nil)
}

// errorFrom is the *Error of a non-2xx answer: the message of its
// {"error": ...} body, else the body's text.
func errorFrom(status int, data []byte) *Error {
	var eb httpjson.ErrorBody
	if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
		eb.Error = strings.TrimSpace(string(data))
	}
	if eb.Error == "" {
		eb.Error = http.StatusText(status)
	}
	return &Error{Status: status, Message: eb.Error}
}

// Refused reports whether the daemon refused the request (a 4xx status):
// the request was wrong for it, as opposed to the daemon failing (5xx).
func (e *Error) Refused() bool { return e.Status >= 400 && e.Status < 500 }

// Deploy deploys a container (pid > 0) or unikernel (kind unikernel) instance.
func (c *Client) Deploy(ctx context.Context, kind deploy.Kind, body api.DeployBody) (api.DeployResponse, error) {
	var out api.DeployResponse
	err := c.Do(ctx, http.MethodPost, "/"+string(kind)+"/deploy", body, &out)
	return out, err
}

// Undeploy removes an instance.
func (c *Client) Undeploy(ctx context.Context, kind deploy.Kind, serviceName string, instance int) error {
	return c.Do(ctx, http.MethodPost, "/"+string(kind)+"/undeploy", api.UndeployBody{ServiceName: serviceName, InstanceNumber: &instance}, nil)
}

// Services lists the deployed instances.
func (c *Client) Services(ctx context.Context) ([]deploy.Record, error) {
	var out []deploy.Record
	err := c.Do(ctx, http.MethodGet, "/services", nil, &out)
	return out, err
}

// Health returns nil when the daemon answers /healthz.
func (c *Client) Health(ctx context.Context) error {
	return c.Do(ctx, http.MethodGet, "/healthz", nil, nil)
}

// Version returns the daemon's version.
func (c *Client) Version(ctx context.Context) (string, error) {
	var out struct {
		Version string `json:"version"`
	}
	err := c.Do(ctx, http.MethodGet, "/version", nil, &out)
	return out.Version, err
}
