package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/module"
)

// fakeSwitch is a file standing in for /sys/kernel/rcu_expedited.
func fakeSwitch(t *testing.T, v string) (sw, marker string) {
	t.Helper()
	dir := t.TempDir()
	sw = filepath.Join(dir, "rcu_expedited")
	if err := os.WriteFile(sw, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return sw, filepath.Join(dir, "state", "rcu-expedited")
}

func readSwitch(t *testing.T, sw string) string {
	t.Helper()
	b, err := os.ReadFile(sw)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

func newFakeExpediter(t *testing.T, v string) (*Expediter, string, string) {
	t.Helper()
	sw, marker := fakeSwitch(t, v)
	e, err := NewExpediter(ExpediterOptions{Path: sw, Marker: marker})
	if err != nil {
		t.Fatal(err)
	}
	return e, sw, marker
}

// A window takes the switch while it is open, with the marker beside it;
// nested windows hold it until the outermost closes; closing twice is one
// close.
func TestExpediterWindows(t *testing.T) {
	e, sw, marker := newFakeExpediter(t, "0")
	end := e.Begin()
	if got := readSwitch(t, sw); got != "1" || !exists(marker) {
		t.Fatalf("inside a window: switch %q, marker %v; want 1 and a marker", got, exists(marker))
	}
	inner := e.Begin()
	inner()
	inner()
	if got := readSwitch(t, sw); got != "1" {
		t.Fatalf("an inner window (closed twice) put the switch back to %q while the outer one is open", got)
	}
	end()
	if got := readSwitch(t, sw); got != "0" || exists(marker) {
		t.Fatalf("after the last window: switch %q, marker %v; want 0 and none", got, exists(marker))
	}
	if e.taken != 1 || e.Err() != nil {
		t.Fatalf("took the switch %d times (want 1), err %v", e.taken, e.Err())
	}
}

// Windows of many goroutines: the switch is on whenever one is open, and
// off once all are closed.
func TestExpediterConcurrent(t *testing.T) {
	e, sw, marker := newFakeExpediter(t, "0")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var off int
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				end := e.Begin()
				b, _ := os.ReadFile(sw)
				if strings.TrimSpace(string(b)) != "1" {
					mu.Lock()
					off++
					mu.Unlock()
				}
				end()
			}
		}()
	}
	wg.Wait()
	if off != 0 {
		t.Errorf("%d windows found the switch off", off)
	}
	if got := readSwitch(t, sw); got != "0" || exists(marker) {
		t.Errorf("after all windows: switch %q, marker %v", got, exists(marker))
	}
}

// A switch already on is the operator's: no window writes it or leaves a
// marker, and it stays on.
func TestExpediterLeavesOperatorsSwitch(t *testing.T) {
	e, sw, marker := newFakeExpediter(t, "1")
	end := e.Begin()
	if exists(marker) {
		t.Error("a marker for a switch we did not take")
	}
	end()
	if got := readSwitch(t, sw); got != "1" || e.taken != 0 {
		t.Errorf("operator's switch: now %q, taken %d times; want 1, 0", got, e.taken)
	}
}

// Repair puts back a switch an earlier run left on (its marker says so),
// and only then.
func TestExpediterRepair(t *testing.T) {
	e, sw, marker := newFakeExpediter(t, "1")
	if done, err := e.Repair(); done || err != nil {
		t.Fatalf("no marker: repaired %v, %v", done, err)
	}
	if got := readSwitch(t, sw); got != "1" {
		t.Fatalf("no marker, yet the switch was put to %q", got)
	}
	if err := os.MkdirAll(filepath.Dir(marker), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(marker, []byte(sw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if done, err := e.Repair(); !done || err != nil {
		t.Fatalf("with a marker: repaired %v, %v", done, err)
	}
	if got := readSwitch(t, sw); got != "0" || exists(marker) {
		t.Errorf("after repair: switch %q, marker %v", got, exists(marker))
	}
}

// Without the switch there are no windows, and Err says why; a nil
// Expediter does nothing.
func TestExpediterWithoutSwitch(t *testing.T) {
	dir := t.TempDir()
	e, err := NewExpediter(ExpediterOptions{Path: filepath.Join(dir, "none"), Marker: filepath.Join(dir, "m")})
	if err != nil {
		t.Fatal(err)
	}
	e.Begin()()
	if err := e.Err(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Err = %v, want not-exist", err)
	}
	if exists(filepath.Join(dir, "m")) {
		t.Error("a marker without a switch")
	}
	var none *Expediter
	none.Begin()()
	if _, err := NewExpediter(ExpediterOptions{}); err == nil {
		t.Error("an Expediter without a marker file was made")
	}
}

// A switch that cannot be written (as root: not even read): no window is
// opened and no marker left, and Err keeps why.
func TestExpediterUnwritable(t *testing.T) {
	e, sw, marker := newFakeExpediter(t, "0")
	var told []error
	e.onError = func(err error) { told = append(told, err) }
	if err := os.Chmod(sw, 0o400); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// root writes a read-only file: make the path a directory's instead
		os.Remove(sw)
		if err := os.Mkdir(sw, 0o700); err != nil {
			t.Fatal(err)
		}
		e.path = sw
	}
	e.Begin()()
	e.Begin()()
	if e.Err() == nil || exists(marker) {
		t.Errorf("unwritable switch: Err %v, marker %v", e.Err(), exists(marker))
	}
	if len(told) != 1 || told[0] != e.Err() {
		t.Errorf("OnError was told %v, want once: %v", told, e.Err())
	}
}

// A switch that cannot be put back at the end of a window: OnError is
// told, the marker stays for the next start's Repair, and no window opens
// after.
func TestExpediterCannotPutBack(t *testing.T) {
	e, sw, marker := newFakeExpediter(t, "0")
	var told []error
	e.onError = func(err error) { told = append(told, err) }
	end := e.Begin()
	// the switch becomes a directory: writing 0 fails
	if err := os.Remove(sw); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(sw, 0o700); err != nil {
		t.Fatal(err)
	}
	end()
	if len(told) != 1 || !exists(marker) {
		t.Fatalf("OnError told %v, marker %v; want one error and the marker kept", told, exists(marker))
	}
	e.Begin()()
	if e.taken != 1 || len(told) != 1 {
		t.Errorf("after the failure: switch taken %d times, %d errors told; want 1, 1", e.taken, len(told))
	}
}

// On the real kernel the Kernel opens a window around every TCX attach
// and every detach (a fake switch counts them), and the switch is off
// again after each.
func TestTCXAttachExpedited(t *testing.T) {
	ns := vethNS(t)
	pins := pinRoot(t)
	k, err := New("tcx")
	if err != nil {
		t.Fatal(err)
	}
	e, sw, marker := newFakeExpediter(t, "0")
	k.Expedite(e)
	dp := loadCounter(t, k, filepath.Join(pins, "a"))
	in(t, ns, func() error {
		idx, err := k.Ifindex("va")
		if err != nil {
			return err
		}
		var links []ebpfmanager.Link
		for i, h := range []module.Hook{module.HookIngress, module.HookEgress} {
			l, err := k.Attach(ebpfmanager.AttachRequest{DataPlane: dp, Hook: h, Ifindex: idx, Ifname: "va",
				PinPath: filepath.Join(pins, "links", string(rune('a'+i)))})
			if err != nil {
				return err
			}
			links = append(links, l)
		}
		if e.taken != 2 {
			t.Errorf("2 attaches opened %d windows", e.taken)
		}
		for _, l := range links {
			if err := l.Close(); err != nil {
				return err
			}
		}
		if e.taken != 4 {
			t.Errorf("2 attaches and 2 detaches opened %d windows", e.taken)
		}
		return nil
	})
	if got := readSwitch(t, sw); got != "0" || exists(marker) || e.Err() != nil {
		t.Errorf("after: switch %q, marker %v, err %v", got, exists(marker), e.Err())
	}
}

// The kernel's own switch: writable here, on inside a window, off after.
// (Another test process's daemon may hold the switch at the same moment:
// the window then finds it on and leaves it be; either way it is on
// inside.)
func TestRealRCUSwitch(t *testing.T) {
	vethNS(t) // root
	e, err := NewExpediter(ExpediterOptions{Marker: filepath.Join(t.TempDir(), "rcu-expedited")})
	if err != nil || e.Err() != nil {
		t.Fatalf("the kernel's switch %s: %v %v", DefaultRCUExpedited, err, e.Err())
	}
	end := e.Begin()
	b, err := os.ReadFile(DefaultRCUExpedited)
	end()
	if err != nil || strings.TrimSpace(string(b)) != "1" || e.Err() != nil {
		t.Fatalf("inside a window %s reads %q (%v), err %v", DefaultRCUExpedited, b, err, e.Err())
	}
}
