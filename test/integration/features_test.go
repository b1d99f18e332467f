package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/events"
	"github.com/oakestra/netmanager/test/nstest"
)

// version reads GET /version.
func version(t *testing.T, n *node) api.VersionInfo {
	t.Helper()
	var v api.VersionInfo
	getJSON(t, n, "/version", &v)
	if v.Version == "" || v.Go == "" || v.Kernel == nil {
		t.Fatalf("GET /version: %+v, want version, go and kernel", v)
	}
	return v
}

// GET /version reports the kernel's release and what the daemon's probes
// found: on this machine's kernel (6.18) the features the data planes use.
// The daemon logs them once, at start.
func TestVersionReportsKernelFeatures(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	v := version(t, n)
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	if want := unix.ByteSliceToString(u.Release[:]); v.Kernel.Release != want {
		t.Errorf("release %q, want %q", v.Kernel.Release, want)
	}
	for _, f := range []string{"tcx", "bpf_loop", "bpf_redirect_peer", "bpf_redirect_neigh", "btf", "bpf_stats", "adjust_room_decap", "map_lpm_trie", "map_lru_hash"} {
		if !v.Kernel.Features[f] {
			t.Errorf("GET /version says this kernel lacks %s: %+v", f, v.Kernel)
		}
	}
	if len(v.Kernel.Masked) != 0 || len(v.Kernel.Inconclusive) != 0 {
		t.Errorf("masked %v, inconclusive %v: want none", v.Kernel.Masked, v.Kernel.Inconclusive)
	}
	var viaCtl api.VersionInfo
	if out := ctl(t, n, "version", "-o", "json").ok(t); json.Unmarshal([]byte(out), &viaCtl) != nil || viaCtl.Kernel == nil ||
		!viaCtl.Kernel.Features["bpf_loop"] || viaCtl.Kernel.Release != v.Kernel.Release {
		t.Errorf("netmanagerctl version -o json: %s", out)
	}
	if lines := strings.Count(n.d.Log(), `msg="kernel features"`); lines != 1 {
		t.Errorf("the features were logged %d times, want once:\n%s", lines, n.d.Log())
	}
	if !strings.Contains(n.d.Log(), "bpf_loop=true") {
		t.Errorf("the features line does not report bpf_loop:\n%s", n.d.Log())
	}
	n.stop(t)
}

// maskedDaemon is the daemon binary run with NETMANAGER_MASK_FEATURES=mask
// (a script that sets it and execs the binary: the test's own environment,
// which parallel tests share, stays as it is).
func maskedDaemon(t *testing.T, mask string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "netmanager-masked")
	script := fmt.Sprintf("#!/bin/sh\nNETMANAGER_MASK_FEATURES=%s exec %s \"$@\"\n", mask, netmanagerBin)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// On a kernel without bpf_loop (masked here) the firewall, whose data plane
// calls it, is refused at once — 422 naming bpf_loop in well under a second,
// before its control plane is opened or the verifier runs — over POST /ebpf
// and as a deploy's SLA module, and the node is left as it was: no
// instance, no pin, no program on the service's veth, no service. A module
// that does not need bpf_loop loads as ever, and one that only optionally
// needs a masked feature loads with a warning.
func TestFeaturesMissingRefusesModule(t *testing.T) {
	t.Parallel()
	n := &node{ns: nstest.NewNetns(t, "nm-node")}
	n.pristine = n.settled(t)
	n.d = nstest.StartDaemon(t, maskedDaemon(t, "bpf_loop,adjust_room_decap"), n.ns, "--modules-dir", modulesDir)
	n.ready = n.settled(t)

	v := version(t, n)
	if v.Kernel.Features["bpf_loop"] || !v.Kernel.Features["tcx"] || !slices.Equal(v.Kernel.Masked, []string{"adjust_room_decap", "bpf_loop"}) {
		t.Fatalf("GET /version with bpf_loop masked: %+v", v.Kernel)
	}
	c := newContainer(t)
	deployContainer(t, n, c, "app.ns.target.ns", 0, "")
	svcs, err := n.d.Client.Services(ctx(t))
	if err != nil || len(svcs) != 1 {
		t.Fatalf("services: %v %v", svcs, err)
	}
	veth := svcs[0].HostVeth
	state := func() string {
		var list []ebpfmanager.Info
		getJSON(t, n, "/ebpf", &list)
		pins, _ := os.ReadDir(n.d.PinDir)
		svcs, _ := n.d.Client.Services(ctx(t))
		return fmt.Sprintf("instances=%d pins=%d chain=%v/%v services=%d", len(list), len(pins),
			tcxChain(t, n, veth, ebpf.AttachTCXIngress), tcxChain(t, n, veth, ebpf.AttachTCXEgress), len(svcs))
	}
	want := state()
	if want != "instances=0 pins=0 chain=[]/[] services=1" {
		t.Fatalf("before the load: %s", want)
	}
	netBefore := n.settled(t)

	start := time.Now()
	status, body, err := n.d.Client.Raw(ctx(t), http.MethodPost, "/ebpf", []byte(`{"name": "firewall", "priority": 10}`))
	took := time.Since(start)
	t.Logf("POST /ebpf firewall without bpf_loop: %d in %v: %s", status, took, body)
	if err != nil || status != http.StatusUnprocessableEntity || !strings.Contains(string(body), "bpf_loop") {
		t.Fatalf("POST /ebpf firewall: %d %s (%v), want 422 naming bpf_loop", status, body, err)
	}
	if took >= time.Second {
		t.Errorf("the refusal took %v, want well under a second", took)
	}
	if got := state(); got != want {
		t.Fatalf("the refusal changed the node's modules:\n%s\nwant\n%s", got, want)
	}
	n.assertState(t, netBefore, "after the refused load")

	// As a deploy's SLA module: refused before the deploy makes anything.
	c2 := newContainer(t)
	inst := 0
	start = time.Now()
	_, err = n.d.Client.Deploy(ctx(t), deploy.KindContainer, api.DeployBody{PID: &c2.pid, ServiceName: "app.ns.sla.ns", InstanceNumber: &inst,
		EbpfModules: []events.Module{{Name: "firewall", Config: json.RawMessage(`{}`)}}})
	took = time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "HTTP 422") || !strings.Contains(err.Error(), "bpf_loop") || took >= time.Second {
		t.Fatalf("deploy with the firewall as SLA module: %v in %v, want 422 naming bpf_loop within a second", err, took)
	}
	if got := state(); got != want {
		t.Fatalf("the refused deploy changed the node:\n%s\nwant\n%s", got, want)
	}
	n.assertState(t, netBefore, "after the refused deploy")

	// What does not need bpf_loop still loads.
	pc := loadModule(t, n, `{"name": "packetcounter"}`)
	if pc.State != ebpfmanager.StateRunning || len(tcxChain(t, n, veth, ebpf.AttachTCXIngress)) != 1 || len(tcxChain(t, n, veth, ebpf.AttachTCXEgress)) != 1 {
		t.Fatalf("packetcounter: %+v", pc)
	}
	// The proxy passes bpf_skb_adjust_room the decap flags (masked too): an
	// optional need, which a data plane may fall back from: it loads, and the
	// daemon warns.
	px := loadModule(t, n, `{"name": "proxy"}`)
	if px.State != ebpfmanager.StateRunning || !strings.Contains(n.d.Log(), `lacking="[adjust_room_decap]" module=proxy`) {
		t.Fatalf("proxy without adjust_room_decap: %+v; want it running and a warning in the log", px)
	}
	if warnings := strings.Count(n.d.Log(), "lacking="); warnings != 1 {
		t.Fatalf("%d warnings about lacking features, want the proxy's only:\n%s", warnings, n.d.Log())
	}
	if err := n.d.Client.Do(ctx(t), http.MethodDelete, "/ebpf", nil, nil); err != nil {
		t.Fatal(err)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.target.ns", 0)
	n.stop(t)
}

// An unknown feature in NETMANAGER_MASK_FEATURES stops the daemon at start
// (exit 2) naming it, rather than masking nothing. It runs in a node
// namespace of its own with its own socket and state, as if it had started.
func TestFeaturesMaskUnknown(t *testing.T) {
	t.Parallel()
	ns := nstest.NewNetns(t, "nm-node")
	dir := t.TempDir()
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(c, "nsenter", "--net="+ns.Path(), maskedDaemon(t, "bpf_loop,bpf_nosuch"), "--socket", filepath.Join(dir, "nm.sock"),
		"--listen", "", "--state-dir", filepath.Join(dir, "state"), "--pin-dir", filepath.Join("/sys/fs/bpf", nstest.UniqueName("nm-test")))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), `"bpf_nosuch" is no feature`) {
		t.Fatalf("start with an unknown feature masked: %v\n%s", err, out)
	}
}
