package deploy

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/config"
	"github.com/oakestra/netmanager/node-net-manager/events"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

// fakeLiveness is the node's processes as RemoveStale sees them: the
// namespace each running PID is in, and the namespaces some process is in.
type fakeLiveness struct {
	mu    sync.Mutex
	procs map[int]NetnsID
	inUse map[string]bool
}

func newFakeLiveness() *fakeLiveness {
	return &fakeLiveness{procs: map[int]NetnsID{}, inUse: map[string]bool{}}
}

func (f *fakeLiveness) ProcessNetns(pid int) (NetnsID, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.procs[pid]
	return id, ok
}

func (f *fakeLiveness) NetnsInUse(path string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inUse[path]
}

func (f *fakeLiveness) set(pid int, ino uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ino == 0 {
		delete(f.procs, pid)
		return
	}
	f.procs[pid] = NetnsID{Dev: 4, Ino: ino}
}

// newStaleHarness is newHarness whose processes are fakeLiveness's, PIDs
// 100-139 running, each in a namespace of its own, saving its records.
func newStaleHarness(t *testing.T) (*harness, *fakeLiveness, string) {
	t.Helper()
	h := newHarness(t)
	lv := newFakeLiveness()
	for pid := 100; pid < 140; pid++ {
		lv.set(pid, uint64(4000+pid))
	}
	state := filepath.Join(t.TempDir(), "services.json")
	h.m.opts.Liveness, h.m.opts.StatePath = lv, state
	return h, lv, state
}

func savedCount(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	if err := json.Unmarshal(data, &recs); err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// When no instance is alive (the containers' processes are gone, nothing
// is in the unikernel's namespace), RemoveStale undeploys them all as an
// undeploy does: events, network, table, addresses, saved state.
func TestRemoveStaleAllGone(t *testing.T) {
	h, lv, state := newStaleHarness(t)
	ctx := context.Background()
	for i, pid := range []int{100, 101} {
		if _, err := h.m.Deploy(ctx, Request{Kind: KindContainer, PID: pid, ServiceName: "app.ns.web.ns", Instance: i, PortMappings: "808" + string(rune('0'+i)) + ":80"}); err != nil {
			t.Fatal(err)
		}
	}
	uk, err := h.m.Deploy(ctx, Request{Kind: KindUnikernel, ServiceName: "app.ns.uk.ns", Instance: 0})
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{100, 101} {
		lv.set(pid, 0)
		h.net.kill(pid)
	}
	h.evlog = nil
	removed, alive, err := h.m.RemoveStale(ctx)
	if err != nil || alive != nil || removed != 3 {
		t.Fatalf("RemoveStale = %d, %v, %v; want 3, nil, nil", removed, alive, err)
	}
	h.assertEmpty(t)
	want := []string{"ServiceRemoved app.ns.uk.ns/0 " + uk.HostVeth, "ServiceRemoved app.ns.web.ns/1", "ServiceRemoved app.ns.web.ns/0"}
	if len(h.evlog) != len(want) {
		t.Fatalf("events: %v, want %v", h.evlog, want)
	}
	for i, w := range want {
		if !strings.HasPrefix(h.evlog[i], w) {
			t.Fatalf("events: %v, want %v (newest first)", h.evlog, want)
		}
	}
	if n := savedCount(t, state); n != 0 {
		t.Fatalf("%d records still saved", n)
	}
	if removed, alive, err := h.m.RemoveStale(ctx); removed != 0 || alive != nil || err != nil {
		t.Fatalf("RemoveStale on an empty node = %d, %v, %v", removed, alive, err)
	}
}

// One instance alive keeps them all, the dead ones too: the NodeEngine
// that deployed them is still there and undeploys them itself.
func TestRemoveStaleKeepsAllWhileOneIsAlive(t *testing.T) {
	for _, tc := range []struct {
		name string
		live func(h *harness, lv *fakeLiveness, uk Record)
		want string
	}{
		{"a container", func(h *harness, lv *fakeLiveness, _ Record) { lv.set(101, 0) }, "app.ns.web.ns/0"},
		{"a unikernel", func(h *harness, lv *fakeLiveness, uk Record) {
			lv.set(100, 0)
			lv.set(101, 0)
			lv.inUse[uk.Netns] = true
		}, "app.ns.uk.ns/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, lv, state := newStaleHarness(t)
			ctx := context.Background()
			for i, pid := range []int{100, 101} {
				if _, err := h.m.Deploy(ctx, container("app.ns.web.ns", i, pid)); err != nil {
					t.Fatal(err)
				}
			}
			uk, err := h.m.Deploy(ctx, Request{Kind: KindUnikernel, ServiceName: "app.ns.uk.ns", Instance: 0})
			if err != nil {
				t.Fatal(err)
			}
			tc.live(h, lv, uk)
			h.evlog = nil
			removed, alive, err := h.m.RemoveStale(ctx)
			if err != nil || removed != 0 || alive == nil {
				t.Fatalf("RemoveStale = %d, %v, %v; want 0 and the live instance", removed, alive, err)
			}
			if got := alive.ServiceName + "/" + string(rune('0'+alive.Instance)); got != tc.want {
				t.Fatalf("alive: %s, want %s", got, tc.want)
			}
			if len(h.m.List()) != 3 || len(h.evlog) != 0 || savedCount(t, state) != 3 {
				t.Fatalf("something was removed: %d records, events %v", len(h.m.List()), h.evlog)
			}
		})
	}
}

// A PID the kernel gave to another process, in another namespace, is not
// the container deployed with it; a container whose namespace could not be
// read at deploy is told by its PID alone.
func TestIsAlive(t *testing.T) {
	lv := newFakeLiveness()
	lv.set(100, 7)
	lv.inUse["/run/netns/app.ns.uk.ns.instance.0"] = true
	ctr := func(pid int, ino uint64) *Record {
		r := &Record{Kind: KindContainer, PID: pid}
		if ino != 0 {
			r.netnsID = NetnsID{Dev: 4, Ino: ino}
		}
		return r
	}
	for _, tc := range []struct {
		name string
		rec  *Record
		want bool
	}{
		{"running, same namespace", ctr(100, 7), true},
		{"PID reused elsewhere", ctr(100, 8), false},
		{"gone", ctr(101, 7), false},
		{"namespace unknown, running", ctr(100, 0), true},
		{"namespace unknown, gone", ctr(101, 0), false},
		{"unikernel with a process", &Record{Kind: KindUnikernel, Netns: "/run/netns/app.ns.uk.ns.instance.0"}, true},
		{"unikernel without", &Record{Kind: KindUnikernel, Netns: "/run/netns/app.ns.uk.ns.instance.1"}, false},
	} {
		if got := isAlive(tc.rec, lv); got != tc.want {
			t.Errorf("%s: isAlive = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A deploy records the container's namespace; the PID reused by a process
// in another namespace afterwards makes the deployment stale.
func TestRemoveStaleAfterPIDReuse(t *testing.T) {
	h, lv, _ := newStaleHarness(t)
	ctx := context.Background()
	if _, err := h.m.Deploy(ctx, container("app.ns.web.ns", 0, 100)); err != nil {
		t.Fatal(err)
	}
	lv.set(100, 9999)
	if removed, alive, err := h.m.RemoveStale(ctx); removed != 1 || alive != nil || err != nil {
		t.Fatalf("RemoveStale = %d, %v, %v; want 1, nil, nil", removed, alive, err)
	}
	h.assertEmpty(t)
}

// ProcLiveness on a procfs-shaped tree: a running process's namespace is
// read, a zombie and a missing PID are not running, and a namespace file
// is in use when some process's is the same file.
func TestProcLivenessTree(t *testing.T) {
	root := t.TempDir()
	mk := func(pid, state string) string {
		dir := filepath.Join(root, pid, "ns")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		ns := filepath.Join(dir, "net")
		if err := os.WriteFile(ns, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, pid, "stat"), []byte(pid+" (a) Z (b) "+state+" 1 1"), 0o644); err != nil {
			t.Fatal(err)
		}
		return ns
	}
	running := mk("100", "S")
	mk("101", "Z")
	named := filepath.Join(root, "named")
	if err := os.Link(running, named); err != nil {
		t.Fatal(err)
	}
	lv := ProcLiveness{Proc: root}
	id, ok := lv.ProcessNetns(100)
	if want, _ := netnsOf(named); !ok || id != want || id.IsZero() {
		t.Fatalf("ProcessNetns(100) = %v, %v; want %v", id, ok, want)
	}
	for _, pid := range []int{101, 102, 0, -1} {
		if _, ok := lv.ProcessNetns(pid); ok {
			t.Errorf("ProcessNetns(%d) says running", pid)
		}
	}
	if !lv.NetnsInUse(named) || lv.NetnsInUse(filepath.Join(root, "missing")) {
		t.Fatal("NetnsInUse: the running process's namespace is in use, a missing file is not")
	}
	if err := os.Remove(running); err != nil {
		t.Fatal(err)
	}
	if lv.NetnsInUse(named) {
		t.Fatal("NetnsInUse after the process left the namespace")
	}
}

// ProcLiveness on the real /proc: this process runs, in the namespace
// /proc/self/ns/net names, which is in use; a child killed and not reaped
// yet (a zombie) does not run.
func TestProcLivenessReal(t *testing.T) {
	lv := ProcLiveness{}
	self, _ := netnsOf("/proc/self/ns/net")
	if id, ok := lv.ProcessNetns(os.Getpid()); !ok || id != self {
		t.Fatalf("ProcessNetns(self) = %v, %v; want %v", id, ok, self)
	}
	if !lv.NetnsInUse("/proc/self/ns/net") {
		t.Fatal("this process's namespace is not in use")
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	pid := cmd.Process.Pid
	if _, ok := lv.ProcessNetns(pid); !ok {
		t.Fatalf("pid %d (sleep) does not run", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Wait() }() // reaps the killed child
	for i := 0; i < 200; i++ {
		if _, ok := lv.ProcessNetns(pid); !ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pid %d runs after SIGKILL", pid)
}

// A service re-adopted after a restart (persist) has its container's
// namespace recorded again (it is not saved): a PID reused elsewhere since
// is stale.
func TestReadoptRecordsNamespace(t *testing.T) {
	h, lv, state := newStaleHarness(t)
	ctx := context.Background()
	if _, err := h.m.Deploy(ctx, container("app.ns.web.ns", 0, 100)); err != nil {
		t.Fatal(err)
	}
	n, _ := config.Default().Validate()
	tab, _ := table.NewStandalone(table.Options{Range: n.ServiceRange})
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	m2, err := New(Options{Net: n, Env: h.net, Table: tab, Bus: &events.Bus{}, Log: log, StatePath: state, Liveness: lv})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m2.Readopt(ctx); got != 1 || err != nil {
		t.Fatalf("re-adopted %d, %v", got, err)
	}
	if removed, alive, err := m2.RemoveStale(ctx); removed != 0 || alive == nil || err != nil {
		t.Fatalf("RemoveStale with the container running = %d, %v, %v", removed, alive, err)
	}
	lv.set(100, 9999)
	if removed, alive, err := m2.RemoveStale(ctx); removed != 1 || alive != nil || err != nil {
		t.Fatalf("RemoveStale after the PID was reused = %d, %v, %v", removed, alive, err)
	}
}
