// Package openapidoc holds the daemon's OpenAPI 3 document (openapi.json) of
// every route it serves: the node API, the daemon's own routes (/proxy,
// /metrics), the eBPF Manager's /ebpf routes and the shipped modules' routes
// under /ebpf/{id}/. It imports nothing of this repository, so the tests of
// the eBPF Manager and of the modules can load the document without the
// NetManager's HTTP layer; node-net-manager/api serves it as GET /openapi.json.
// docs/api.md is the readable reference; the tests (test/openapitest and its
// users) keep the routers and this document in step.
package openapidoc

import _ "embed"

//go:embed openapi.json
var doc []byte

// JSON returns the document (JSON), as GET /openapi.json serves it. The
// slice is a copy: the caller may change it.
func JSON() []byte { return append([]byte(nil), doc...) }
