// Package httpjson is the JSON of the NetManager's HTTP edges: request
// bodies decoded with clear 4xx errors (a size limit, malformed JSON, a
// field of the wrong type) and answers and errors written alike, the status
// of an error from its errdefs class. The node API and the eBPF Manager's
// routes both use it.
package httpjson
