package errdefs

import (
	"errors"
	"net/http"
)

var (
	// ErrInvalid marks a malformed or semantically invalid request (400).
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound marks a request for something that does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict marks a request that clashes with the node's current state (409).
	ErrConflict = errors.New("conflict")
	// ErrUnprocessable marks a well-formed request that cannot be carried out,
	// such as a module that fails to load (422).
	ErrUnprocessable = errors.New("cannot be processed")
	// ErrUnavailable marks a request that needs something outside the node
	// that cannot be reached now, such as the cluster's broker (503).
	ErrUnavailable = errors.New("unavailable")
	// ErrTooLarge marks a request body over the API's limit (413).
	ErrTooLarge = errors.New("request body too large")
)

// HTTPStatus returns the status code for err: the code of the first sentinel
// it wraps, or 500 for anything unexpected.
func HTTPStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrUnprocessable):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	default:
		return http.StatusInternalServerError
	}
}

// Kind names err's class for metrics and logs: "invalid", "not_found",
// "conflict", "unprocessable", "unavailable", "too_large", or "internal" for
// anything unexpected; "" for nil.
func Kind(err error) string {
	switch HTTPStatus(err) {
	case http.StatusOK:
		return ""
	case http.StatusBadRequest:
		return "invalid"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusConflict:
		return "conflict"
	case http.StatusUnprocessableEntity:
		return "unprocessable"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	default:
		return "internal"
	}
}
