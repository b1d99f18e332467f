package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Checker validates requests and answers against the document with
// openapi3filter: an answer's status must be one the operation lists and
// its body must match that status's schema.
type Checker struct {
	Doc    *openapi3.T
	router routers.Router
	server *url.URL
}

// NewChecker makes a Checker for doc.
func NewChecker(tb testing.TB, doc *openapi3.T) *Checker {
	tb.Helper()
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		tb.Fatalf("route the OpenAPI document: %v", err)
	}
	srv, err := url.Parse(doc.Servers[0].URL)
	if err != nil {
		tb.Fatal(err)
	}
	return &Checker{Doc: doc, router: r, server: srv}
}

var opts = &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}

// ErrNoOperation is Request's error for a method and path the document lacks.
var ErrNoOperation = errors.New("the document has no such operation")

// Request finds the operation of method and path (relative to the API's
// root, e.g. "/ebpf/1/rules", with a query if any) and validates the request against it. The
// input is returned also when the request does not conform (err != nil),
// so its answer can be checked; it is nil with ErrNoOperation.
func (c *Checker) Request(method, path string, body []byte) (*openapi3filter.RequestValidationInput, error) {
	u := *c.server
	ref, err := url.Parse(path) // a query is the request's, not the path's
	if err != nil {
		return nil, err
	}
	u.Path, u.RawQuery = ref.Path, ref.RawQuery
	req, err := http.NewRequest(method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s (%v)", ErrNoOperation, method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	err = openapi3filter.ValidateRequest(context.Background(), in)
	req.Body = io.NopCloser(bytes.NewReader(body)) // read again by ValidateResponse, if at all
	return in, err
}

// Response validates an answer to in's request.
func (c *Checker) Response(in *openapi3filter.RequestValidationInput, status int, header http.Header, body []byte) error {
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: opts}
	out.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), out)
}

func init() { openapi3filter.RegisterBodyDecoder("application/x-ndjson", ndjsonDecoder) }

// ndjsonDecoder reads a stream of JSON lines (GET /ebpf/trace, /ebpf/drops),
// each of which must match the schema: it checks every line but the first
// and returns the first for openapi3filter to check. An empty stream (no
// line yet) conforms: it returns the schema's smallest instance, its
// required properties as "" or, for a date-time, the epoch (a PacketPath's
// time).
func ndjsonDecoder(body io.Reader, _ http.Header, schema *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	var first any
	dec := json.NewDecoder(body)
	for i := 0; ; i++ {
		var v any
		if err := dec.Decode(&v); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, &openapi3filter.ParseError{Kind: openapi3filter.KindInvalidFormat, Cause: fmt.Errorf("line %d: %w", i+1, err)}
		}
		if i == 0 {
			first = v
			continue
		}
		if err := schema.Value.VisitJSON(v, openapi3.VisitAsResponse()); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
	}
	if first == nil {
		min := map[string]any{}
		for _, k := range schema.Value.Required {
			min[k] = ""
			if p := schema.Value.Properties[k]; p != nil && p.Value != nil && p.Value.Format == "date-time" {
				min[k] = "1970-01-01T00:00:00Z"
			}
		}
		first = min
	}
	return first, nil
}
