package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/events"
)

type totals struct{ Packets, Bytes uint64 }

func loadModule(t *testing.T, n *node, body string) ebpfmanager.Info {
	t.Helper()
	var info ebpfmanager.Info
	if err := n.d.Client.Do(ctx(t), http.MethodPost, "/ebpf", json.RawMessage(body), &info); err != nil {
		t.Fatalf("load %s: %v", body, err)
	}
	return info
}

func getJSON(t *testing.T, n *node, path string, out any) {
	t.Helper()
	if err := n.d.Client.Do(ctx(t), http.MethodGet, path, nil, out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

func counts(t *testing.T, n *node, id, veth string) map[string]totals {
	t.Helper()
	var c map[string]map[string]totals
	getJSON(t, n, "/ebpf/"+id+"/counts", &c)
	return c[veth]
}

// stableCounts reads two counters' "egress" (from-service) packets on veth at
// one quiet moment: it rereads until the first is unchanged around the second.
func stableCounts(t *testing.T, n *node, a, b, veth string) (uint64, uint64) {
	t.Helper()
	for i := 0; i < 50; i++ {
		x := counts(t, n, a, veth)["egress"].Packets
		y := counts(t, n, b, veth)["egress"].Packets
		if counts(t, n, a, veth)["egress"].Packets == x {
			return x, y
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("counters never settled")
	return 0, 0
}

func pingMarked(t *testing.T, from *container, to string, count int, tos string, wantLoss bool) {
	t.Helper()
	args := []string{"ping", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "1", to}
	if tos != "" {
		args = append(args, "-Q", tos)
	}
	out, err := from.ns.Exec(args...)
	if wantLoss && !strings.Contains(out, "100% packet loss") {
		t.Fatalf("ping %v should have been dropped:\n%s", args, out)
	}
	if !wantLoss && err != nil {
		t.Fatalf("ping %v: %v\n%s", args, err, out)
	}
}

// The chain follows priorities, not load order; every module sees what the
// ones before it passed on; new services get every module; undeploy and
// delete remove exactly their links, pins and routes.
func TestModuleChain(t *testing.T) {
	for _, mode := range []string{"tcx", "legacy"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, "--tc-mode", mode)
			a, b := newContainer(t), newContainer(t)
			ra := deployContainer(t, n, a, "app.ns.alpha.ns", 0, "")

			// Loaded out of order: after (30), dropper (20), before (10).
			after := loadModule(t, n, `{"name": "packetcounter", "priority": 30}`)
			dropper := loadModule(t, n, `{"name": "dropmark", "priority": 20, "config": {"tos": 32}}`)
			before := loadModule(t, n, `{"name": "packetcounter", "priority": 10}`)
			if after.Mode != ebpfmanager.Mode(mode) || len(after.Attachments) != 2 {
				t.Fatalf("instance: %+v", after)
			}
			var list []ebpfmanager.Info
			getJSON(t, n, "/ebpf", &list)
			if len(list) != 3 || list[0].ID != before.ID || list[1].ID != dropper.ID || list[2].ID != after.ID {
				t.Fatalf("GET /ebpf not in chain order: %+v", list)
			}

			// A service deployed after the modules gets all of them.
			rb := deployContainer(t, n, b, "app.ns.beta.ns", 0, "")
			var inf ebpfmanager.Info
			getJSON(t, n, "/ebpf/"+before.ID, &inf)
			if len(inf.Attachments) != 4 {
				t.Fatalf("attachments after second deploy: %+v", inf.Attachments)
			}
			veth := ra.ServiceName
			recs, _ := n.d.Client.Services(ctx(t))
			for _, r := range recs {
				if r.ServiceName == ra.ServiceName {
					veth = r.HostVeth
				}
			}

			// Unmarked traffic passes every module: both counters see it all.
			b0, a0 := stableCounts(t, n, before.ID, after.ID, veth)
			pingMarked(t, a, rb.NsAddress, 3, "", false)
			b1, a1 := stableCounts(t, n, before.ID, after.ID, veth)
			if b1-b0 < 3 || b1-b0 != a1-a0 {
				t.Fatalf("unmarked: before counted %d, after %d", b1-b0, a1-a0)
			}
			// Marked traffic is dropped at priority 20: only the counter at 10 sees it.
			pingMarked(t, a, rb.NsAddress, 3, "0x20", true)
			b2, a2 := stableCounts(t, n, before.ID, after.ID, veth)
			if (b2-b1)-(a2-a1) != 3 {
				t.Fatalf("marked: before counted %d, after %d; want exactly 3 more before", b2-b1, a2-a1)
			}
			var dropped map[string]uint64
			getJSON(t, n, "/ebpf/"+dropper.ID+"/dropped", &dropped)
			if dropped["dropped"] != 3 {
				t.Fatalf("dropper dropped %d", dropped["dropped"])
			}

			// Undeploy removes the service's links and pins.
			undeploy(t, n, deploy.KindContainer, "app.ns.beta.ns", 0)
			getJSON(t, n, "/ebpf/"+before.ID, &inf)
			if len(inf.Attachments) != 2 {
				t.Fatalf("attachments after undeploy: %+v", inf.Attachments)
			}
			if mode == "tcx" {
				links, _ := os.ReadDir(filepath.Join(n.d.PinDir, before.ID, "links"))
				if len(links) != 2 {
					t.Fatalf("link pins after undeploy: %v", links)
				}
			}

			// Deleting the middle instance removes its pins and routes; the
			// others keep their order and now both count marked traffic.
			if err := n.d.Client.Do(ctx(t), http.MethodDelete, "/ebpf/"+dropper.ID, nil, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(n.d.PinDir, dropper.ID)); err == nil {
				t.Fatal("deleted instance's pins remain")
			}
			if status, _, _ := n.d.Client.Raw(ctx(t), http.MethodGet, "/ebpf/"+dropper.ID+"/dropped", nil); status != 404 {
				t.Fatalf("deleted instance's route answers %d", status)
			}
			c0b, c0a := stableCounts(t, n, before.ID, after.ID, veth)
			pingMarked(t, a, "10.18.0.1", 2, "0x20", false)
			c1b, c1a := stableCounts(t, n, before.ID, after.ID, veth)
			if c1b-c0b < 2 || c1b-c0b != c1a-c0a {
				t.Fatalf("after delete: before counted %d, after %d", c1b-c0b, c1a-c0a)
			}

			if err := n.d.Client.Do(ctx(t), http.MethodDelete, "/ebpf", nil, nil); err != nil {
				t.Fatal(err)
			}
			if entries, _ := os.ReadDir(n.d.PinDir); len(entries) != 0 {
				t.Fatalf("pins after DELETE /ebpf: %v", entries)
			}
			undeploy(t, n, deploy.KindContainer, "app.ns.alpha.ns", 0)
			n.assertState(t, n.ready, "after deleting every module")
			n.stop(t)
		})
	}
}

// Bad loads get their 4xx and change nothing: no instance, link, pin or route.
func TestModuleLoadRefusals(t *testing.T) {
	t.Parallel()
	n := newNode(t, "--modules-dir", modulesWith(t, buildMismatchedPlugin(t), writableModule(t)))
	c := newContainer(t)
	deployContainer(t, n, c, "app.ns.target.ns", 0, "")
	keep := loadModule(t, n, `{"name": "packetcounter"}`)
	veth := keep.Attachments[0].Interface
	state := func() string {
		var list []ebpfmanager.Info
		getJSON(t, n, "/ebpf", &list)
		pins, _ := exec.Command("find", n.d.PinDir).Output()
		return fmt.Sprintf("instances=%d chain=%v/%v pins=%s", len(list),
			tcxChain(t, n, veth, ebpf.AttachTCXIngress), tcxChain(t, n, veth, ebpf.AttachTCXEgress), pins)
	}
	want := state()
	netBefore := n.settled(t)
	cases := []struct {
		name, body string
		code       int
		text       string
	}{
		{"path traversal", `{"name": "../x"}`, 400, "must match"},
		{"upper case", `{"name": "A"}`, 400, "must match"},
		{"empty name", `{"name": ""}`, 400, "must match"},
		{"malformed JSON", `{"name": `, 400, "malformed JSON"},
		{"unknown module", `{"name": "nosuch"}`, 404, "not installed"},
		{"config not an object", `{"name": "packetcounter", "config": 5}`, 400, "JSON object"},
		{"config the module refuses", `{"name": "packetcounter", "config": {"maxInterfaces": 0}}`, 400, "maxInterfaces"},
		{"unknown interface", `{"name": "packetcounter", "interfaces": ["nosuch0"]}`, 400, "nosuch0"},
		{"priority out of range", `{"name": "packetcounter", "priority": 5000}`, 400, "priority"},
		{"plugin built with other flags", `{"name": "badflags"}`, 422, "different version of package"},
		{"New with the wrong signature", `{"name": "badsig"}`, 422, "New is a func() error"},
		{"verifier rejection", `{"name": "badverifier"}`, 422, "verifier rejected"},
		{"world-writable module file", `{"name": "writable"}`, 422, "writable.so is group- or world-writable"},
	}
	for _, tc := range cases {
		status, body, err := n.d.Client.Raw(ctx(t), http.MethodPost, "/ebpf", []byte(tc.body))
		if err != nil || status != tc.code || !strings.Contains(string(body), tc.text) {
			t.Errorf("%s: %d %s (%v), want %d containing %q", tc.name, status, body, err, tc.code, tc.text)
		}
		if got := state(); got != want {
			t.Fatalf("%s changed the manager's state:\n%s\nwant\n%s", tc.name, got, want)
		}
		n.assertState(t, netBefore, tc.name)
	}
	for _, rq := range []struct{ method, path string }{{"GET", "/ebpf/99"}, {"DELETE", "/ebpf/99"}, {"GET", "/ebpf/99/counts"}, {"GET", "/ebpf/" + keep.ID + "/nope"}} {
		if status, _, _ := n.d.Client.Raw(ctx(t), rq.method, rq.path, nil); status != 404 {
			t.Errorf("%s %s: %d, want 404", rq.method, rq.path, status)
		}
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.target.ns", 0)
	n.stop(t)
}

// A control plane that panics — attaching to a service, or serving a route —
// fails that instance only; the daemon and the other modules carry on.
func TestPanickingModuleIsContained(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	a, b, c := newContainer(t), newContainer(t), newContainer(t)
	deployContainer(t, n, a, "app.ns.fine.ns", 0, "")
	counter := loadModule(t, n, `{"name": "packetcounter", "priority": 5}`)
	bad := loadModule(t, n, `{"name": "dropmark", "priority": 10, "config": {"panicOnAttach": "app.ns.boom.ns"}}`)

	pid := b.pid
	inst := 0
	_, err := n.d.Client.Deploy(ctx(t), deploy.KindContainer, apiBody(pid, "app.ns.boom.ns", inst))
	if err == nil || !strings.Contains(err.Error(), "HTTP 422") || !strings.Contains(err.Error(), "panicked in Attach") {
		t.Fatalf("deploy onto a panicking module: %v", err)
	}
	var inf ebpfmanager.Info
	getJSON(t, n, "/ebpf/"+bad.ID, &inf)
	if inf.State != ebpfmanager.StateFailed {
		t.Fatalf("instance after panic: %+v", inf)
	}
	if err := n.d.Client.Health(ctx(t)); err != nil {
		t.Fatalf("daemon down after a module panic: %v", err)
	}
	// The failed instance is skipped from now on; the rest still works.
	rc := deployContainer(t, n, c, "app.ns.later.ns", 0, "")
	assertPing(t, a.ns, rc.NsAddress)
	getJSON(t, n, "/ebpf/"+counter.ID, &inf)
	if len(inf.Attachments) != 4 {
		t.Fatalf("counter attachments: %+v", inf.Attachments)
	}
	// A panicking handler: 500, then the instance answers 503.
	good := loadModule(t, n, `{"name": "dropmark", "priority": 20}`)
	if status, _, _ := n.d.Client.Raw(ctx(t), http.MethodGet, "/ebpf/"+good.ID+"/panic", nil); status != 500 {
		t.Fatalf("panicking handler: %d", status)
	}
	if status, _, _ := n.d.Client.Raw(ctx(t), http.MethodGet, "/ebpf/"+good.ID+"/dropped", nil); status != 503 {
		t.Fatalf("failed instance's route: %d", status)
	}
	if err := n.d.Client.Health(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := n.d.Client.Do(ctx(t), http.MethodDelete, "/ebpf", nil, nil); err != nil {
		t.Fatal(err)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.fine.ns", 0)
	undeploy(t, n, deploy.KindContainer, "app.ns.later.ns", 0)
	n.assertState(t, n.ready, "after the panics")
	n.stop(t)
}

// buildMismatchedPlugin builds the dropmark control plane without the daemon's
// -trimpath, as a module named badflags, and returns its directory. (The test
// daemon loads no dropmark: Go refuses a second plugin of one package path
// with "plugin already loaded", which would hide the mismatch.)
func buildMismatchedPlugin(t *testing.T) string {
	t.Helper()
	root, _ := filepath.Abs("../..")
	dir := filepath.Join(t.TempDir(), "badflags")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-buildmode=plugin", "-o", filepath.Join(dir, "badflags.so"), "./test/modules/dropmark")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build mismatched plugin: %v\n%s", err, out)
	}
	obj, err := os.ReadFile(filepath.Join(root, "build/test-modules/dropmark/dropmark.o"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "badflags.o"), obj, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writableModule is a copy of packetcounter whose plugin anyone may write.
func writableModule(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "writable")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".so", ".o"} {
		data, err := os.ReadFile(filepath.Join(modulesDir, "packetcounter", "packetcounter"+ext))
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "writable"+ext)
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "writable.so"), 0o666); err != nil {
		t.Fatal(err)
	}
	return dir
}

// modulesWith is a modules directory with every built module plus extra ones.
func modulesWith(t *testing.T, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	entries, _ := os.ReadDir(modulesDir)
	for _, e := range entries {
		target, _ := os.Readlink(filepath.Join(modulesDir, e.Name()))
		_ = os.Symlink(target, filepath.Join(dir, e.Name()))
	}
	for _, x := range extra {
		if err := os.Symlink(x, filepath.Join(dir, filepath.Base(x))); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tcxChain lists the TCX programs on an interface of the node.
func tcxChain(t *testing.T, n *node, ifname string, at ebpf.AttachType) []ebpf.ProgramID {
	t.Helper()
	var ids []ebpf.ProgramID
	err := n.ns.Do(func() error {
		l, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		res, err := link.QueryPrograms(link.QueryOptions{Target: l.Index, Attach: at})
		if err != nil {
			return err
		}
		for _, p := range res.Programs {
			ids = append(ids, p.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("query %s: %v", ifname, err)
	}
	return ids
}

// An instance can target a host interface instead of service veths; its
// counts are named by the interface's own hooks.
func TestModuleOnHostInterface(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	c := newContainer(t)
	deployContainer(t, n, c, "app.ns.pinger.ns", 0, "")
	info := loadModule(t, n, `{"name": "packetcounter", "interfaces": ["goProxyBridge"]}`)
	if len(info.Attachments) != 2 || info.Attachments[0].Interface != "goProxyBridge" || info.Attachments[0].Service != "" || info.Attachments[0].Direction != "ingress" {
		t.Fatalf("attachments: %+v", info.Attachments)
	}
	assertPing(t, c.ns, "10.18.0.1") // to the bridge itself: through its hooks
	got := counts(t, n, info.ID, "goProxyBridge")
	if got["ingress"].Packets < 2 || got["egress"].Packets < 2 {
		t.Fatalf("bridge counts %+v", got)
	}
	// A service deployed later does not get a host-interface instance.
	c2 := newContainer(t)
	deployContainer(t, n, c2, "app.ns.other.ns", 0, "")
	var inf ebpfmanager.Info
	getJSON(t, n, "/ebpf/"+info.ID, &inf)
	if len(inf.Attachments) != 2 {
		t.Fatalf("host-interface instance attached to a service: %+v", inf.Attachments)
	}
	if err := n.d.Client.Do(ctx(t), http.MethodDelete, "/ebpf/"+info.ID, nil, nil); err != nil {
		t.Fatal(err)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.pinger.ns", 0)
	undeploy(t, n, deploy.KindContainer, "app.ns.other.ns", 0)
	n.assertState(t, n.ready, "after the host-interface module")
	n.stop(t)
}

// A deploy's ebpfModules (the SLA) attach to that service only, are shared by
// its instances, and go with the last of them.
func TestSLAModules(t *testing.T) {
	t.Parallel()
	n := slaNode(t) // the operator allows dropmark (sla_test.go)
	client, target, twin := newContainer(t), newContainer(t), newContainer(t)
	deployContainer(t, n, client, "app.ns.client.ns", 0, "")
	sla := []events.Module{{Name: "dropmark", Config: json.RawMessage(`{"tos": 32}`)}}
	body := apiBody(target.pid, "app.ns.guarded.ns", 0)
	body.EbpfModules = sla
	rt, err := n.d.Client.Deploy(ctx(t), deploy.KindContainer, body)
	if err != nil {
		t.Fatal(err)
	}
	body = apiBody(twin.pid, "app.ns.guarded.ns", 1)
	body.EbpfModules = sla
	if _, err := n.d.Client.Deploy(ctx(t), deploy.KindContainer, body); err != nil {
		t.Fatal(err)
	}
	var list []ebpfmanager.Info
	getJSON(t, n, "/ebpf", &list)
	if len(list) != 1 || !list[0].SLA || list[0].References != 2 || len(list[0].Attachments) != 4 {
		t.Fatalf("SLA instance: %+v", list)
	}
	pingMarked(t, client, rt.NsAddress, 2, "", false)
	pingMarked(t, client, rt.NsAddress, 2, "0x20", true)
	undeploy(t, n, deploy.KindContainer, "app.ns.guarded.ns", 0)
	getJSON(t, n, "/ebpf", &list)
	if len(list) != 1 || list[0].References != 1 {
		t.Fatalf("after one of two instances went: %+v", list)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.guarded.ns", 1)
	getJSON(t, n, "/ebpf", &list)
	if len(list) != 0 {
		t.Fatalf("SLA instance outlived its service: %+v", list)
	}
	if entries, _ := os.ReadDir(n.d.PinDir); len(entries) != 0 {
		t.Fatalf("pins left: %v", entries)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.client.ns", 0)
	n.assertState(t, n.ready, "after the SLA services")
	n.stop(t)
}
