package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Version reads the version out of GET /version as the daemon answers it,
// the kernel an object beside it.
func TestVersion(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/version" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"version": "v1.2.3", "go": "go1.26.8", "kernel": {"release": "6.18.44", "features": {"tcx": true}}}`))
	}))
	defer srv.Close()
	v, err := New(srv.URL, "").Version(context.Background())
	if err != nil || v != "v1.2.3" {
		t.Fatalf("Version: %q %v", v, err)
	}
}
