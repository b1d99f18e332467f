package integration

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestInstall runs `make install` and `make uninstall` into a staging root
// (DESTDIR), never the machine's own /usr, /etc or /lib: the exact files,
// their modes and contents, the systemd unit, a user's netmanager.json left
// alone, and nothing but the standard directories left after an uninstall,
// run twice.
func TestInstall(t *testing.T) {
	repo := installRepo(t)
	dest := t.TempDir()
	userJSON := filepath.Join(dest, "etc/netmanager/netmanager.json")
	userConf := []byte("{\"logLevel\": \"debug\"}\n")
	if err := os.MkdirAll(filepath.Dir(userJSON), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(userJSON, userConf, 0o600); err != nil {
		t.Fatal(err)
	}

	// make test has built; -o build copies what it built instead of
	// rebuilding build/ under the tests that load its modules meanwhile.
	start := time.Now()
	runMake(t, repo, "-o", "build", "install", "DESTDIR="+dest)
	t.Logf("make install DESTDIR=... took %s (the build done before)", time.Since(start).Round(time.Millisecond))

	assertInstalled(t, dest, installedFiles(t, repo, "/usr/bin"), "/usr/bin", "etc/netmanager/netmanager.json")
	assertUserJSON(t, userJSON, userConf)
	checkUnit(t, dest, "/usr/bin/netmanager")

	// The installed binaries run: the daemon's and the CLI's help.
	out, err := exec.Command(filepath.Join(dest, "usr/bin/netmanager"), "-h").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("-persist")) || !bytes.Contains(out, []byte("-config")) {
		t.Fatalf("installed netmanager -h: %v\n%s", err, out)
	}
	out, err = exec.Command(filepath.Join(dest, "usr/bin/netmanagerctl"), "--help").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("usage: netmanagerctl")) {
		t.Fatalf("installed netmanagerctl --help: %v\n%s", err, out)
	}

	standard := []string{"etc", "etc/netmanager", "lib", "lib/systemd", "lib/systemd/system", "usr", "usr/bin", "usr/lib"}
	for i := 1; i <= 2; i++ { // a second uninstall finds nothing to do, and succeeds
		runMake(t, repo, "uninstall", "DESTDIR="+dest)
		assertLeft(t, dest, []string{"etc/netmanager/netmanager.json"}, standard)
		assertUserJSON(t, userJSON, userConf)
	}
	if err := os.Remove(userJSON); err != nil {
		t.Fatal(err)
	}

	// Another PREFIX moves the binaries and the unit's ExecStart, not the
	// modules: the daemon looks for them in /usr/lib/netmanager/modules. The
	// build is up to date by now (-o build skips the second check of it).
	dest2 := t.TempDir()
	runMake(t, repo, "-o", "build", "install", "DESTDIR="+dest2, "PREFIX=/usr/local")
	assertInstalled(t, dest2, installedFiles(t, repo, "/usr/local/bin"), "/usr/local/bin", "")
	checkUnit(t, dest2, "/usr/local/bin/netmanager")
	runMake(t, repo, "uninstall", "DESTDIR="+dest2, "PREFIX=/usr/local")
	assertLeft(t, dest2, nil, []string{"etc", "lib", "lib/systemd", "lib/systemd/system", "usr", "usr/lib", "usr/local", "usr/local/bin"})
}

func installRepo(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// runMake runs make in the repository with the test's environment less what
// an enclosing make (make test) or the caller's shell would pass on.
func runMake(t *testing.T, repo string, args ...string) {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-C", repo, "--no-print-directory"}, args...)...)
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR", "PREFIX":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// installedFile is one file install puts in place: its source in the checkout
// and its mode.
type installedFile struct {
	src  string
	mode fs.FileMode
}

// installedFiles is what install must put under DESTDIR, by path relative to
// it: the two binaries in bindir, every shipped module (each directory of
// modules/: its .so from its Go files, its .o from its .bpf.c; not the
// test-only ones), the example config and the unit.
func installedFiles(t *testing.T, repo, bindir string) map[string]installedFile {
	t.Helper()
	bin := strings.TrimPrefix(bindir, "/")
	want := map[string]installedFile{
		bin + "/netmanager":                      {filepath.Join(repo, "build/bin/netmanager"), 0o755},
		bin + "/netmanagerctl":                   {filepath.Join(repo, "build/bin/netmanagerctl"), 0o755},
		"etc/netmanager/netmanager.example.json": {filepath.Join(repo, "docs/netmanager.example.json"), 0o644},
		"lib/systemd/system/netmanager.service":  {filepath.Join(repo, "dist/netmanager.service"), 0o644},
	}
	entries, err := os.ReadDir(filepath.Join(repo, "modules"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		names = append(names, name)
		built := filepath.Join(repo, "build/modules", name, name)
		if gos, _ := filepath.Glob(filepath.Join(repo, "modules", name, "*.go")); len(gos) > 0 {
			want["usr/lib/netmanager/modules/"+name+"/"+name+".so"] = installedFile{built + ".so", 0o644}
		}
		if _, err := os.Stat(filepath.Join(repo, "modules", name, name+".bpf.c")); err == nil {
			want["usr/lib/netmanager/modules/"+name+"/"+name+".o"] = installedFile{built + ".o", 0o644}
		}
	}
	for _, m := range []string{"packetcounter", "firewall", "proxy", "sdwan"} {
		if _, ok := want["usr/lib/netmanager/modules/"+m+"/"+m+".so"]; !ok {
			t.Fatalf("module %s not found in modules/ (found %v)", m, names)
		}
	}
	return want
}

// assertInstalled checks dest holds exactly the files of want (and skip, a
// file that was there before), each with its mode and its source's content;
// the unit's is the source's with /usr/bin/netmanager moved to bindir.
func assertInstalled(t *testing.T, dest string, want map[string]installedFile, bindir, skip string) {
	t.Helper()
	files, _ := stagedTree(t, dest)
	var got, wantNames []string
	for _, f := range files {
		if f != skip {
			got = append(got, f)
		}
	}
	for f := range want {
		wantNames = append(wantNames, f)
	}
	sort.Strings(wantNames)
	if !reflect.DeepEqual(got, wantNames) {
		t.Fatalf("installed files:\n got %q\nwant %q", got, wantNames)
	}
	for f, w := range want {
		st, err := os.Stat(filepath.Join(dest, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != w.mode {
			t.Errorf("%s: mode %v, want %v", f, st.Mode().Perm(), w.mode)
		}
		gotData, err := os.ReadFile(filepath.Join(dest, f))
		if err != nil {
			t.Fatal(err)
		}
		wantData, err := os.ReadFile(w.src)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".service") {
			wantData = bytes.ReplaceAll(wantData, []byte("/usr/bin/netmanager"), []byte(bindir+"/netmanager"))
		}
		if !bytes.Equal(gotData, wantData) {
			t.Errorf("%s differs from %s", f, w.src)
		}
	}
}

// stagedTree lists dest's regular files and directories (not dest itself), sorted,
// relative to dest.
func stagedTree(t *testing.T, dest string) (files, dirs []string) {
	t.Helper()
	err := filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dest {
			return err
		}
		rel, _ := filepath.Rel(dest, p)
		if d.IsDir() {
			dirs = append(dirs, rel)
		} else {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	sort.Strings(dirs)
	return files, dirs
}

// assertLeft checks that after an uninstall dest holds only the files given
// and at most the directories given (those a real system has anyway; install
// made them only because dest started empty).
func assertLeft(t *testing.T, dest string, files, dirs []string) {
	t.Helper()
	gotFiles, gotDirs := stagedTree(t, dest)
	if !reflect.DeepEqual(gotFiles, files) && !(len(gotFiles) == 0 && len(files) == 0) {
		t.Fatalf("after uninstall, files left: %q, want %q", gotFiles, files)
	}
	allowed := map[string]bool{}
	for _, d := range dirs {
		allowed[d] = true
	}
	for _, d := range gotDirs {
		if !allowed[d] {
			t.Fatalf("after uninstall, directory %s left (want only %q)", d, dirs)
		}
	}
}

func assertUserJSON(t *testing.T, path string, want []byte) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("the user's netmanager.json: %v", err)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, want) || st.Mode().Perm() != 0o600 {
		t.Fatalf("the user's netmanager.json changed: %q, mode %v", got, st.Mode().Perm())
	}
}

// checkUnit checks the installed unit: systemd-analyze verify finds nothing
// to say about it (where systemd-analyze exists), its keys, and what its
// ExecStart runs — bin --persist, with --config /etc/netmanager/netmanager.json
// only when that file exists.
func checkUnit(t *testing.T, dest, bin string) {
	t.Helper()
	path := filepath.Join(dest, "lib/systemd/system/netmanager.service")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(dest)) {
		t.Fatalf("the unit names the staging root %s", dest)
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("netmanager.service")) {
			t.Fatalf("systemd-analyze verify %s: %v\n%s", path, err, out)
		}
	} else {
		t.Logf("no systemd-analyze: checking the unit's keys only")
	}
	keys := unitKeys(t, data)
	for k, v := range map[string]string{
		"Unit.Wants": "network-online.target", "Service.Restart": "on-failure", "Service.Type": "simple",
		"Service.StandardOutput": "journal", "Service.StandardError": "journal", "Install.WantedBy": "multi-user.target",
	} {
		if keys[k] != v {
			t.Errorf("unit %s = %q, want %q", k, keys[k], v)
		}
	}
	if !strings.HasPrefix(keys["Unit.After"], "network-online.target") {
		t.Errorf("unit After = %q, want network-online.target first", keys["Unit.After"])
	}
	exe := keys["Service.ExecStart"]
	if !strings.HasPrefix(exe, "/bin/sh -c '") || !strings.HasSuffix(exe, "'") || strings.Count(exe, "'") != 2 {
		t.Fatalf("unit ExecStart = %q, want /bin/sh -c '...'", exe)
	}
	// Run the script as systemd would ($$ is a $), with bin a stub that
	// prints its arguments and the config at a path of the test's.
	script := strings.ReplaceAll(exe[len("/bin/sh -c '"):len(exe)-1], "$$", "$")
	if !strings.Contains(script, "exec "+bin+" --persist") {
		t.Fatalf("unit ExecStart = %q, want it to exec %s --persist", exe, bin)
	}
	tmp := t.TempDir()
	stub, conf := filepath.Join(tmp, "netmanager"), filepath.Join(tmp, "netmanager.json")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\necho \"$*\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	script = strings.ReplaceAll(strings.ReplaceAll(script, bin, stub), "/etc/netmanager/netmanager.json", conf)
	for _, c := range []struct {
		file bool
		want string
	}{{false, "--persist"}, {true, "--persist --config " + conf}} {
		if c.file {
			if err := os.WriteFile(conf, []byte("{}"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != c.want {
			t.Errorf("ExecStart with the config file there: %v: runs the daemon with %q (%v), want %q", c.file, got, err, c.want)
		}
	}
}

// unitKeys parses a unit file into Section.Key values (the last one wins).
func unitKeys(t *testing.T, data []byte) map[string]string {
	t.Helper()
	keys, section := map[string]string{}, ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("unit: not a key=value line in a section: %q", line)
			}
			keys[section+"."+strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return keys
}
