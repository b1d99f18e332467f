package api

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestStatusWriterFlushes: a handler behind the logging and audit wrappers
// can flush (a streamed trace sends each line as it comes); without Unwrap
// http.ResponseController.Flush says http.ErrNotSupported.
func TestStatusWriterFlushes(t *testing.T) {
	rec := httptest.NewRecorder()
	sw := &statusWriter{ResponseWriter: rec, status: http.StatusOK}
	if _, err := sw.Write([]byte("line\n")); err != nil {
		t.Fatal(err)
	}
	if err := http.NewResponseController(sw).Flush(); err != nil || !rec.Flushed {
		t.Fatalf("Flush through statusWriter: %v, flushed %v", err, rec.Flushed)
	}
}
