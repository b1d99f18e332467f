package errdefs

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestHTTPStatus(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, http.StatusOK},
		{fmt.Errorf("%w: bad name", ErrInvalid), http.StatusBadRequest},
		{fmt.Errorf("outer: %w", fmt.Errorf("%w: no such", ErrNotFound)), http.StatusNotFound},
		{fmt.Errorf("%w: twice", ErrConflict), http.StatusConflict},
		{fmt.Errorf("%w: verifier", ErrUnprocessable), http.StatusUnprocessableEntity},
		{fmt.Errorf("%w: broker", ErrUnavailable), http.StatusServiceUnavailable},
		{fmt.Errorf("%w: larger than 1048576 bytes", ErrTooLarge), http.StatusRequestEntityTooLarge},
		{errors.New("boom"), http.StatusInternalServerError},
	}
	for _, c := range cases {
		if got := HTTPStatus(c.err); got != c.want {
			t.Errorf("HTTPStatus(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

func TestKind(t *testing.T) {
	cases := map[error]string{
		nil:                                   "",
		fmt.Errorf("%w: bad", ErrInvalid):     "invalid",
		fmt.Errorf("x: %w", ErrNotFound):      "not_found",
		ErrConflict:                           "conflict",
		fmt.Errorf("%w: v", ErrUnprocessable): "unprocessable",
		ErrUnavailable:                        "unavailable",
		ErrTooLarge:                           "too_large",
		errors.New("boom"):                    "internal",
	}
	for err, want := range cases {
		if got := Kind(err); got != want {
			t.Errorf("Kind(%v) = %q, want %q", err, got, want)
		}
	}
}
