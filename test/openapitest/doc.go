// Package openapitest is a test helper that keeps routers and the API's
// OpenAPI document (node-net-manager/api/openapidoc) in step: tests of the
// node API, the eBPF Manager and each module walk their router and compare
// its routes with the operations the document says they serve (the
// operation's x-served-by, and x-modules for a module's routes); Checker
// validates requests and answers against the document (openapi3filter).
// It imports only the document, not the NetManager's HTTP layer, so the eBPF
// Manager's and the modules' tests can use it.
package openapitest
