package openapitest

import (
	"bytes"
	"context"
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
