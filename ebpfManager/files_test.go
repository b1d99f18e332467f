package ebpfmanager

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnsafeFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "m.so")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode os.FileMode
		euid int
		want string
	}{
		{0o644, os.Geteuid(), ""},
		{0o755, os.Geteuid(), ""},
		{0o664, os.Geteuid(), "group- or world-writable"},
		{0o646, os.Geteuid(), "group- or world-writable"},
	} {
		if err := os.Chmod(f, tc.mode); err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(f)
		if got := unsafeFile(st, tc.euid); !strings.Contains(got, tc.want) || (tc.want == "") != (got == "") {
			t.Errorf("mode %o: %q, want %q", tc.mode, got, tc.want)
		}
	}
	if os.Geteuid() == 0 { // a root daemon refuses a file another user owns
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(f, 1234, 1234); err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(f)
		if got := unsafeFile(st, 0); got != "is not owned by root" {
			t.Errorf("owned by 1234: %q", got)
		}
	}
}
