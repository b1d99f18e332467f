package client

import (
	"bufio"
	"context"
	"net/http"
)

// Stream GETs path and calls line with each line of a 2xx answer as it
// comes (JSON lines), until the answer ends, ctx is done or line fails;
// the client's timeout does not apply. Any other status is an *Error.
func (c *Client) Stream(ctx context.Context, path string, line func([]byte) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := *c.hc
	hc.Timeout = 0 // a stream lasts as long as it lasts
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var data []byte
		for sc.Scan() {
			data = append(data, sc.Bytes()...)
		}
		return errorFrom(resp.StatusCode, data)
	}
	for sc.Scan() {
		if err := line(sc.Bytes()); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}
