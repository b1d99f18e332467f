package release

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/test/nstest"
)

// version is the release version the test builds, outDir where make release
// wrote the archives (once per test binary), buildErr why it could not.
const version = "0.0.0-test"

var (
	repo     string
	outDir   string
	buildErr error
)

func TestMain(m *testing.M) {
	nstest.RequireRoot()
	var err error
	if repo, err = filepath.Abs("../.."); err != nil {
		panic(err)
	}
	tmp, err := os.MkdirTemp("", "nm-release-")
	if err != nil {
		panic(err)
	}
	outDir = filepath.Join(tmp, "release")
	start := time.Now()
	buildErr = runMake(repo, "release", "RELEASE_DIR="+outDir, "VERSION="+version)
	fmt.Fprintf(os.Stderr, "make release (amd64 and arm64) took %s\n", time.Since(start).Round(time.Second))
	code := m.Run()
	_ = os.RemoveAll(tmp)
	os.Exit(code)
}

// runMake runs make in dir without what an enclosing make would pass on.
func runMake(dir string, args ...string) error {
	cmd := exec.Command("make", append([]string{"-C", dir, "--no-print-directory"}, args...)...)
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR", "PREFIX", "ARCH", "VERSION":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// archive is the path of arch's archive; the test fails if make release did.
func archive(t *testing.T, arch string) string {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(outDir, "netmanager-"+version+"-linux-"+arch+".tar.gz")
}

// unpack extracts arch's archive into a temp dir and returns the archive's
// top directory there.
func unpack(t *testing.T, arch string) string {
	t.Helper()
	f, err := os.Open(archive(t, arch))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dest, filepath.Clean(h.Name))
		if !strings.HasPrefix(p, dest+string(os.PathSeparator)) {
			t.Fatalf("archive entry %q outside the archive's directory", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, os.FileMode(h.Mode).Perm())
		case tar.TypeReg:
			err = writeFile(p, tr, os.FileMode(h.Mode).Perm())
		default:
			t.Fatalf("archive entry %q: type %c", h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dest, "netmanager-"+version+"-linux-"+arch)
}

func writeFile(p string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
