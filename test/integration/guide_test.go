package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var guideFile = regexp.MustCompile("(?s)```(?:c|go)\n(.*?)```\n<!-- file: ([a-z.]+) -->")

// The module in docs/module-authoring.md builds with the project's tooling,
// loads into a real daemon and counts what it says it counts.
func TestModuleAuthoringGuide(t *testing.T) {
	t.Parallel()
	root, _ := filepath.Abs("../..")
	doc, err := os.ReadFile(filepath.Join(root, "docs/module-authoring.md"))
	if err != nil {
		t.Fatal(err)
	}
	matches := guideFile.FindAllStringSubmatch(string(doc), -1)
	if len(matches) != 2 {
		t.Fatalf("the guide should hold two files, found %d", len(matches))
	}
	// Inside the repository (build/ is ignored by git) so the plugin builds
	// against the daemon's go.mod, as a module author's would.
	src := filepath.Join(root, "build", "guide-src", "echocount")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(src)) })
	for _, m := range matches {
		name := m[2]
		if name == "echocount.bpf.c" || name == "main.go" {
			if err := os.WriteFile(filepath.Join(src, name), []byte(m[1]), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	out := t.TempDir()
	cmd := exec.Command("scripts/build-modules.sh", "build/guide-src", out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the guide's module: %v\n%s", err, b)
	}
	n := newNode(t, "--modules-dir", modulesWith(t, filepath.Join(out, "echocount")))
	a, b := newContainer(t), newContainer(t)
	deployContainer(t, n, a, "app.ns.pinger.ns", 0, "")
	rb := deployContainer(t, n, b, "app.ns.target.ns", 0, "")
	info := loadModule(t, n, `{"name": "echocount", "priority": 50}`)
	assertPing(t, a.ns, rb.NsAddress) // 2 echo requests
	var echoes map[string]uint64
	getJSON(t, n, "/ebpf/"+info.ID+"/echoes", &echoes)
	var total uint64
	for veth, v := range echoes {
		if !strings.HasPrefix(veth, "oak") {
			t.Fatalf("echoes keyed by %q", veth)
		}
		total += v
	}
	if total != 2 {
		t.Fatalf("echoes %v, want 2 requests in all", echoes)
	}
	var scraped float64
	for _, m := range scrapeMetrics(t, n)["netmanager_module_echocount_echo_requests_total"].GetMetric() {
		scraped += m.GetCounter().GetValue()
	}
	if scraped != 2 {
		t.Fatalf("GET /metrics has %v echo requests, want 2", scraped)
	}
	if err := n.d.Client.Do(ctx(t), "DELETE", "/ebpf/"+info.ID, nil, nil); err != nil {
		t.Fatal(err)
	}
	n.stop(t)
}
