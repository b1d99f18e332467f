package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// authSeen is a daemon that records the Authorization header it gets.
func authSeen(t *testing.T) (url string, got func() []string) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = w.Write([]byte(`{"status": "ok"}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []string { mu.Lock(); defer mu.Unlock(); s := seen; seen = nil; return s }
}

func TestTokenSent(t *testing.T) {
	url, got := authSeen(t)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("the-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCtl("--addr", url, "--token-file", file, "health"); code != exitOK {
		t.Fatalf("--token-file: exit %d: %s", code, errOut)
	}
	if g := got(); len(g) != 1 || g[0] != "Bearer the-token-0123456789" {
		t.Errorf("--token-file: sent %q", g)
	}
	t.Setenv(tokenEnv, file)
	if code, _, errOut := runCtl("--addr", url, "health"); code != exitOK {
		t.Fatalf("$%s: exit %d: %s", tokenEnv, code, errOut)
	}
	if g := got(); len(g) != 1 || g[0] != "Bearer the-token-0123456789" {
		t.Errorf("$%s: sent %q", tokenEnv, g)
	}
}

// A token file the user names must be readable: the command stops, saying why.
func TestTokenFileNamedButMissing(t *testing.T) {
	url, got := authSeen(t)
	missing := filepath.Join(t.TempDir(), "nosuch")
	code, _, errOut := runCtl("--addr", url, "--token-file", missing, "health")
	if code != exitFailure || !strings.Contains(errOut, "token file: open "+missing) {
		t.Errorf("exit %d: %s", code, errOut)
	}
	if g := got(); len(g) != 0 {
		t.Errorf("requests sent: %q", g)
	}
}

// Over the unix socket no token is read or sent.
func TestTokenNotOnSocket(t *testing.T) {
	t.Setenv(tokenEnv, filepath.Join(t.TempDir(), "nosuch"))
	code, _, errOut := runCtl("--socket", filepath.Join(t.TempDir(), "nm.sock"), "health")
	if strings.Contains(errOut, "token file") || code != exitFailure {
		t.Errorf("exit %d: %s", code, errOut)
	}
}
