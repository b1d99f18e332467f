package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// minTokenLen is the shortest bearer token the daemon accepts from a file
// an operator wrote.
const minTokenLen = 16

// loadToken reads the bearer token of the API on TCP from path, making it
// (32 random bytes, hex, mode 0600, its directory if needed) when there is
// none; made says it did. An existing file is used as it is, but only when
// it is a regular file of the daemon's user that no group or other user may
// read or write, and holds a token of at least minTokenLen printable
// characters.
func loadToken(path string) (token string, made bool, err error) {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		token, err = makeToken(path)
		return token, err == nil, err
	}
	if err != nil {
		return "", false, fmt.Errorf("tokenFile %s: %w", path, err)
	}
	if err := tokenFileSafe(path, st, os.Geteuid()); err != nil {
		return "", false, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", false, fmt.Errorf("tokenFile %s: %w", path, err)
	}
	token = strings.TrimSpace(string(data))
	if len(token) < minTokenLen || strings.IndexFunc(token, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return "", false, fmt.Errorf("tokenFile %s: want one token of at least %d printable characters without spaces (delete the file and the NetManager makes one)", path, minTokenLen)
	}
	return token, false, nil
}

// tokenFileSafe says why the file st at path may not hold the token, or nil.
func tokenFileSafe(path string, st fs.FileInfo, euid int) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("tokenFile %s: not a regular file (%s)", path, st.Mode().Type())
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("tokenFile %s: mode %04o lets other users read or write the token; run chmod 600 %s", path, perm, path)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != euid {
		return fmt.Errorf("tokenFile %s: owned by uid %d, not by the NetManager's user (uid %d); run chown %d %s", path, sys.Uid, euid, euid, path)
	}
	return nil
}

// makeToken writes a new random token to path, never over an existing file.
func makeToken(path string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("tokenFile %s: %w", path, err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("tokenFile %s: random token: %w", path, err)
	}
	token := hex.EncodeToString(b)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("tokenFile %s: %w", path, err)
	}
	_, err = f.WriteString(token + "\n")
	if err = errors.Join(err, f.Close()); err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("tokenFile %s: %w", path, err)
	}
	return token, nil
}
