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
