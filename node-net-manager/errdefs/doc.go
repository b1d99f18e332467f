// Package errdefs holds the NetManager's few error sentinels and maps them to HTTP status codes.
//
// Code anywhere in the daemon wraps one of these sentinels with context
// (fmt.Errorf("%w: serviceName %q ...", errdefs.ErrInvalid, name)); the HTTP layer
// turns the sentinel into the status code and the whole message into {"error": ...}.
package errdefs
