package release

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/test/nstest"
)

// TestReleaseSHA256SUMS: SHA256SUMS names both archives with their digests.
func TestReleaseSHA256SUMS(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(filepath.Dir(archive(t, "amd64")), "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 {
		t.Fatalf("SHA256SUMS has %d lines, want 2:\n%s", len(lines), data)
	}
	for i, arch := range []string{"amd64", "arm64"} {
		b, err := os.ReadFile(archive(t, arch))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		want := hex.EncodeToString(sum[:]) + "  " + filepath.Base(archive(t, arch))
		if lines[i] != want {
			t.Errorf("SHA256SUMS line %d = %q, want %q", i+1, lines[i], want)
		}
		t.Logf("%s: %.1f MB", filepath.Base(archive(t, arch)), float64(len(b))/1e6)
	}
}

// TestReleaseInstall installs the amd64 archive with its own Makefile, with no
// Go on PATH, into a staging root, and runs the installed daemon in a test
// namespace on the installed modules: /healthz answers, the version is the
// release's, a shipped module loads.
func TestReleaseInstall(t *testing.T) {
	dest := installRelease(t, unpack(t, "amd64"))
	for _, f := range []string{"usr/bin/netmanager", "usr/bin/netmanagerctl", "etc/netmanager/netmanager.example.json",
		"lib/systemd/system/netmanager.service", "usr/lib/netmanager/modules/packetcounter/packetcounter.so",
		"usr/lib/netmanager/modules/sdwan/sdwan.o"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("installed: %v", err)
		}
	}
	d := startInstalled(t, dest)
	var v struct{ Version, Go string }
	if err := d.Client.Do(ctx(t), http.MethodGet, "/version", nil, &v); err != nil || v.Version != version || v.Go != runtime.Version() {
		t.Fatalf("the installed daemon's GET /version: %+v (%v), want %q built by %s", v, err, version, runtime.Version())
	}
	loadAndList(t, d, "packetcounter")
}

// TestReleaseArm64Objects: the arm64 archive's binaries and plugins are arm64
// ELF objects, its data planes BPF objects, its kit records arm64.
func TestReleaseArm64Objects(t *testing.T) {
	top := unpack(t, "arm64")
	files, _ := filepath.Glob(filepath.Join(top, "modules/*/*"))
	files = append(files, filepath.Join(top, "bin/netmanager"), filepath.Join(top, "bin/netmanagerctl"))
	plugins := 0
	for _, f := range files {
		want := elf.EM_AARCH64
		if strings.HasSuffix(f, ".o") {
			want = elf.EM_BPF
		} else if strings.HasSuffix(f, ".so") {
			plugins++
		}
		e, err := elf.Open(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if e.Machine != want {
			t.Errorf("%s: machine %v, want %v", f, e.Machine, want)
		}
		e.Close()
	}
	if plugins != 4 {
		t.Errorf("%d plugins in the arm64 archive, want 4 (the shipped modules)", plugins)
	}
	env, err := os.ReadFile(filepath.Join(top, "module-kit/toolchain.env"))
	if err != nil || !strings.Contains(string(env), "NM_ARCH=arm64\n") {
		t.Errorf("the arm64 kit's toolchain.env: %v\n%s", err, env)
	}
}

// TestReleaseOutOfTreeModule builds the module guide's echocount in a temp
// dir outside the repository, with its own go.mod, with the amd64 kit only (no
// network, an empty module cache), and loads it into the installed daemon.
func TestReleaseOutOfTreeModule(t *testing.T) {
	top := unpack(t, "amd64")
	dest := installRelease(t, top)
	src := guideModule(t)
	out := t.TempDir()
	start := time.Now()
	if b, err := kitBuild(t, top, src, out); err != nil {
		t.Fatalf("module-kit/build.sh: %v\n%s", err, b)
	}
	t.Logf("the kit built echocount in %s", time.Since(start).Round(time.Millisecond))
	mods := filepath.Join(dest, "usr/lib/netmanager/modules")
	if b, err := exec.Command("cp", "-a", filepath.Join(out, "echocount"), mods).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, b)
	}
	loadAndList(t, startInstalled(t, dest), "echocount")
}

// TestReleaseKitRefusesOtherGo: a kit whose daemon was built by another Go
// (faked in toolchain.env) refuses to build, naming both versions.
func TestReleaseKitRefusesOtherGo(t *testing.T) {
	top := unpack(t, "amd64")
	envFile := filepath.Join(top, "module-kit/toolchain.env")
	env, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	faked := regexp.MustCompile(`(?m)^NM_GO_VERSION=.*$`).ReplaceAll(env, []byte("NM_GO_VERSION=go1.25.99"))
	if err := os.WriteFile(envFile, faked, 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	b, err := kitBuild(t, top, guideModule(t), out)
	want := "module-kit: go is " + runtime.Version() + ", but this release's daemon (netmanager " + version +
		") was built with go1.25.99: a plugin loads only into a daemon built by the same Go version"
	if err == nil || !strings.Contains(string(b), want) {
		t.Fatalf("build.sh with another Go: %v\n%s\nwant the refusal %q", err, b, want)
	}
	if left, _ := filepath.Glob(filepath.Join(out, "*/*")); len(left) != 0 {
		t.Fatalf("the refused build wrote %v", left)
	}
}

var guideFile = regexp.MustCompile("(?s)```(?:c|go)\n(.*?)```\n<!-- file: ([a-z.]+) -->")

// guideModule writes docs/module-authoring.md's echocount, with a go.mod of
// its own, into a temp dir (outside the repository) and returns its directory.
func guideModule(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(repo, "docs/module-authoring.md"))
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "echocount")
	files := map[string]string{"go.mod": "module example.com/echocount\n\ngo 1.26.8\n"}
	for _, m := range guideFile.FindAllStringSubmatch(string(doc), -1) {
		files[m[2]] = m[1]
	}
	if len(files) != 3 {
		t.Fatalf("the guide's files: %d, want main.go and echocount.bpf.c", len(files)-1)
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if strings.HasPrefix(src, repo+string(os.PathSeparator)) {
		t.Fatalf("%s is inside the repository", src)
	}
	return src
}

// kitBuild runs the kit's build.sh on src into out, offline: GOPROXY=off (the
// kit's goproxy/ only) and an empty module cache; GOFLAGS and GOWORK unset.
func kitBuild(t *testing.T, top, src, out string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(top, "module-kit/build.sh"), src, out)
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "GOFLAGS", "GOWORK", "GOPROXY", "GOMODCACHE":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "GOPROXY=off", "GOMODCACHE="+t.TempDir())
	return cmd.CombinedOutput()
}

// installRelease runs the archive's `make install` into a staging root with a
// PATH without Go, and returns the root.
func installRelease(t *testing.T, top string) string {
	t.Helper()
	dest := t.TempDir()
	cmd := exec.Command("make", "-C", top, "--no-print-directory", "install", "DESTDIR="+dest)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + t.TempDir()}
	if _, err := exec.LookPath("/usr/bin/go"); err == nil {
		t.Fatalf("/usr/bin/go exists: the install would not prove it needs no Go")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install from the archive: %v\n%s", err, b)
	}
	return dest
}

// startInstalled runs the installed daemon in a new namespace on the
// installed modules (/healthz answers when StartDaemon returns).
func startInstalled(t *testing.T, dest string) *nstest.Daemon {
	t.Helper()
	return nstest.StartDaemon(t, filepath.Join(dest, "usr/bin/netmanager"), nstest.NewNetns(t, "nm-rel"),
		"--modules-dir", filepath.Join(dest, "usr/lib/netmanager/modules"))
}

// loadAndList: POST /ebpf {"name": name} answers 200, GET /ebpf lists it, and
// it is deleted again.
func loadAndList(t *testing.T, d *nstest.Daemon, name string) {
	t.Helper()
	code, body, err := d.Client.Raw(ctx(t), http.MethodPost, "/ebpf", []byte(`{"name": "`+name+`"}`))
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST /ebpf %s: %d %v\n%s", name, code, err, body)
	}
	var info struct{ ID string }
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatal(err)
	}
	var list []struct{ ID, Name, State string }
	if err := d.Client.Do(ctx(t), http.MethodGet, "/ebpf", nil, &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != name || list[0].ID != info.ID {
		t.Fatalf("GET /ebpf = %+v, want %s (id %s)", list, name, info.ID)
	}
	if err := d.Client.Do(ctx(t), http.MethodDelete, "/ebpf/"+info.ID, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
