package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/ebpfManager/kernel"
)

// A daemon killed while it held the kernel's RCU switch on (its marker in
// the state dir says so) puts the switch back at its next start; a daemon
// that attaches and detaches modules leaves it as it found it (off) and no
// marker.
func TestExpediteAttachRepairs(t *testing.T) {
	state := t.TempDir()
	marker := filepath.Join(state, "rcu-expedited")
	if err := os.WriteFile(marker, []byte(kernel.DefaultRCUExpedited+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kernel.DefaultRCUExpedited, []byte("1"), 0); err != nil {
		t.Fatalf("the kernel's RCU switch: %v", err)
	}
	t.Cleanup(func() { _ = os.WriteFile(kernel.DefaultRCUExpedited, []byte("0"), 0) })
	n := newNode(t, "--state-dir="+state, "--tc-mode=tcx")
	if !strings.Contains(n.d.Log(), "an earlier run stopped with RCU grace periods expedited: put back to 0") {
		t.Errorf("no word of the repair in the log:\n%s", n.d.Log())
	}
	switchOff := func(what string) {
		t.Helper()
		// another test process's daemon may hold the switch for a few
		// microseconds: off once within a second is off
		for i := 0; i < 100; i++ {
			if b, err := os.ReadFile(kernel.DefaultRCUExpedited); err == nil && strings.TrimSpace(string(b)) == "0" {
				if _, err := os.Stat(marker); err == nil {
					t.Errorf("%s: the marker %s is still there", what, marker)
				}
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("%s: %s stays on", what, kernel.DefaultRCUExpedited)
	}
	switchOff("after the start")
	c := newContainer(t)
	deployContainer(t, n, c, "app.ns.exp.ns", 0, "")
	pc := loadModule(t, n, `{"name": "packetcounter", "priority": 10}`)
	if len(pc.Attachments) == 0 {
		t.Fatalf("the packet counter attached nowhere: %+v", pc)
	}
	switchOff("after attaching")
	if code, out, err := n.d.Client.Raw(ctx(t), "DELETE", "/ebpf/"+pc.ID, nil); err != nil || code/100 != 2 {
		t.Fatalf("unload: %d %s %v", code, out, err)
	}
	switchOff("after detaching")
}
