package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// MaxBody is the largest request body accepted.
const MaxBody = 1 << 20

// ErrorBody is the JSON shape of every error response.
type ErrorBody struct {
	Error string `json:"error"`
}

// WriteJSON writes v with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes err as {"error": ...} with the status of its sentinel.
func WriteError(w http.ResponseWriter, err error) {
	WriteJSON(w, errdefs.HTTPStatus(err), ErrorBody{Error: err.Error()})
}

// DecodeJSON reads one JSON value from the request body into v. Unknown fields
// are ignored (the NodeEngine may send more than this daemon reads); a wrong
// type, malformed JSON, trailing data or an oversized body is an ErrInvalid
// naming the problem.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	if err := dec.Decode(v); err != nil {
		return describeDecodeError(err)
	}
	if dec.More() {
		return fmt.Errorf("%w: malformed JSON: data after the request object", errdefs.ErrInvalid)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: malformed JSON: data after the request object", errdefs.ErrInvalid)
	}
	return nil
}

func describeDecodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var big *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: request body is empty, a JSON object was expected", errdefs.ErrInvalid)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: malformed JSON: unexpected end of body", errdefs.ErrInvalid)
	case errors.As(err, &syn):
		return fmt.Errorf("%w: malformed JSON at byte %d: %v", errdefs.ErrInvalid, syn.Offset, syn)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Errorf("%w: the body must be a JSON object, not %s", errdefs.ErrInvalid, typ.Value)
		}
		return fmt.Errorf("%w: field %q must be of type %s, got %s", errdefs.ErrInvalid, typ.Field, typ.Type, typ.Value)
	case errors.As(err, &big):
		return fmt.Errorf("%w: larger than %d bytes", errdefs.ErrTooLarge, big.Limit)
	default:
		return fmt.Errorf("%w: %v", errdefs.ErrInvalid, err)
	}
}
