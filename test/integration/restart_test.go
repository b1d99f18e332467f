package integration

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/node-net-manager/table"
	"github.com/oakestra/netmanager/test/nstest"
)

// With persist, the firewall and the eBPF proxy keep working while the
// daemon is down, after a SIGTERM and after a kill -9, and the next start
// takes them back: a steady UDP stream between two services by service IP
// loses no packet, the firewall's rules (one added through its routes)
// and hits are as before, and GET /ebpf lists the same instances.
func TestModulesOutliveTheDaemon(t *testing.T) {
	for _, mode := range []string{"tcx", "legacy"} {
		t.Run(mode, func(t *testing.T) { modulesOutliveTheDaemon(t, mode) })
	}
}

func modulesOutliveTheDaemon(t *testing.T, mode string) {
	state := "--state-dir=" + t.TempDir()
	tcMode := "--tc-mode=" + mode
	n := newNode(t, state, "--persist", tcMode)
	pins := n.d.PinDir
	a, b := newContainer(t), newContainer(t)
	deployContainer(t, n, a, "app.ns.cli.ns", 0, "")
	rb := deployContainer(t, n, b, "app.ns.web.ns", 0, "")
	fw := loadModule(t, n, `{"name": "firewall", "priority": 10, "config": {"rules": [{"id": "noping", "action": "deny", "proto": "icmp"}]}}`)
	if code, out, err := n.d.Client.Raw(ctx(t), http.MethodPost, "/ebpf/"+fw.ID+"/rules", []byte(`{"id": "nodiscard", "action": "deny", "proto": "udp", "dstPorts": "9"}`)); err != nil || code != 200 {
		t.Fatalf("add a rule: %d %s %v", code, out, err)
	}
	px := loadModule(t, n, `{"name": "proxy", "priority": 50}`)
	var webVeth string
	recs, _ := n.d.Client.Services(ctx(t))
	for _, r := range recs {
		if r.ServiceName == "app.ns.web.ns" {
			webVeth = r.HostVeth
		}
	}
	rr := serviceIP(t, n, "app.ns.web.ns", 0, table.PolicyRoundRobin)
	counter := nstest.CountUDP(t, b.ns, ":7000")
	sctx, stop := context.WithCancel(context.Background())
	defer stop()
	sent := nstest.SendUDP(t, sctx, a.ns, net.JoinHostPort(rr, "7000"), time.Millisecond)
	pingMarked(t, a, rb.NsAddress, 1, "", true)
	var list []ebpfmanager.Info
	getJSON(t, n, "/ebpf", &list)
	var rules []map[string]any
	getJSON(t, n, "/ebpf/"+fw.ID+"/rules", &rules)
	var proxyBefore proxyStats
	getJSON(t, n, "/proxy", &proxyBefore)

	for _, crash := range []bool{false, true} {
		if crash {
			n.d.Kill(t)
		} else {
			n.d.Stop(t)
		}
		pingMarked(t, a, rb.NsAddress, 1, "", true) // the firewall denies without the daemon
		time.Sleep(300 * time.Millisecond)
		n.d = nstest.StartDaemon(t, netmanagerBin, n.ns, "--modules-dir", modulesDir, state, "--persist", "--pin-dir", pins, tcMode)
		var again []ebpfmanager.Info
		getJSON(t, n, "/ebpf", &again)
		if len(again) != 2 || again[0].ID != fw.ID || again[1].ID != px.ID || !again[0].Readopted || len(again[0].Drift)+len(again[1].Drift) != 0 ||
			len(again[0].Attachments) != len(list[0].Attachments) || len(again[1].Attachments) != len(list[1].Attachments) {
			t.Fatalf("after the restart (crash %v): %+v\nwas %+v", crash, again, list)
		}
		for hook, at := range map[string]ebpf.AttachType{"ingress": ebpf.AttachTCXIngress, "egress": ebpf.AttachTCXEgress} {
			if mode != "tcx" {
				break // legacy filters: counted below
			}
			want := map[ebpf.ProgramID]bool{}
			for _, in := range again {
				for _, att := range in.Attachments {
					if att.Interface == webVeth && att.Hook == hook {
						want[ebpf.ProgramID(att.ProgramID)] = true
					}
				}
			}
			chain := tcxChain(t, n, webVeth, at)
			if len(chain) != len(want) {
				t.Fatalf("%s chain on %s after the restart: %v (one program per instance, no leftover)", at, webVeth, chain)
			}
			for _, id := range chain {
				if !want[id] {
					t.Fatalf("%s chain on %s runs program %d, which no instance lists: %v", at, webVeth, id, again)
				}
			}
		}
		if mode == "legacy" {
			for hook, want := range map[string]int{"ingress": 2, "egress": 1} {
				out := n.ns.MustExec(t, "tc", "filter", "show", "dev", webVeth, hook)
				if got := strings.Count(out, "direct-action"); got != want {
					t.Fatalf("%s filters on %s after the restart: %d, want %d:\n%s", hook, webVeth, got, want, out)
				}
			}
		}
		var now []map[string]any
		getJSON(t, n, "/ebpf/"+fw.ID+"/rules", &now)
		if len(now) != 2 || now[1]["id"] != "nodiscard" || now[0]["hits"].(float64) < rules[0]["hits"].(float64) {
			t.Fatalf("rules after the restart (crash %v): %v, were %v", crash, now, rules)
		}
		pingMarked(t, a, rb.NsAddress, 1, "", true)
	}
	time.Sleep(200 * time.Millisecond)
	stop()
	total := sent()
	time.Sleep(200 * time.Millisecond)
	got := counter.Got()
	if total < 500 || uint64(got) != total {
		t.Fatalf("the data path lost %d of %d datagrams across two restarts", total-uint64(got), total)
	}
	var proxyAfter proxyStats
	getJSON(t, n, "/proxy", &proxyAfter)
	if proxyAfter.Stats.NewSessions != 0 {
		t.Fatalf("the user-space proxy carried %d flows: the stream left the kernel", proxyAfter.Stats.NewSessions)
	}
	t.Logf("%d datagrams, none lost, across a SIGTERM and a kill -9", total)
	undeploy(t, n, deploy.KindContainer, "app.ns.cli.ns", 0)
	undeploy(t, n, deploy.KindContainer, "app.ns.web.ns", 0)
	n.d.Stop(t)
	n.d = nstest.StartDaemon(t, netmanagerBin, n.ns, "--modules-dir", modulesDir, state, "--pin-dir", pins, tcMode)
	n.stop(t)
}

// With the daemon stopped (persist), an attachment removed by hand and a
// service that went away meanwhile: the next start attaches the first
// again and removes the pinned attachment of the second, and lists both as
// drift of the instance.
func TestRestartRepairsDrift(t *testing.T) {
	t.Parallel()
	state := "--state-dir=" + t.TempDir()
	n := newNode(t, state, "--persist")
	pins := n.d.PinDir
	a, b := newContainer(t), newContainer(t)
	deployContainer(t, n, a, "app.ns.cli.ns", 0, "")
	deployContainer(t, n, b, "app.ns.web.ns", 0, "")
	fw := loadModule(t, n, `{"name": "firewall", "config": {"rules": [{"action": "deny", "proto": "icmp"}]}}`)
	veths := map[string]string{}
	recs, _ := n.d.Client.Services(ctx(t))
	for _, r := range recs {
		veths[r.ServiceName] = r.HostVeth
	}
	n.d.Stop(t)
	removed := filepath.Join(pins, fw.ID, "links", veths["app.ns.web.ns"]+"_ingress")
	if err := os.Remove(removed); err != nil {
		t.Fatal(err)
	}
	// The kernel lets go of an unpinned link a moment later.
	waitUntil(t, "removing the pin detaches the link", func() bool {
		return len(tcxChain(t, n, veths["app.ns.web.ns"], ebpf.AttachTCXIngress)) == 0
	})
	if err := syscall.Kill(a.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	nstest.DeleteNetns(t, a.ns.Name)

	n.d = nstest.StartDaemon(t, netmanagerBin, n.ns, "--modules-dir", modulesDir, state, "--persist", "--pin-dir", pins)
	var info ebpfmanager.Info
	getJSON(t, n, "/ebpf/"+fw.ID, &info)
	drift := strings.Join(info.Drift, "\n")
	if len(info.Drift) != 3 || !strings.Contains(drift, "attached to "+veths["app.ns.web.ns"]+" ingress again") ||
		!strings.Contains(drift, "removed the attachment "+veths["app.ns.cli.ns"]+"_ingress") || !strings.Contains(drift, "removed the attachment "+veths["app.ns.cli.ns"]+"_egress") {
		t.Fatalf("drift: %v", info.Drift)
	}
	if len(info.Attachments) != 2 || len(tcxChain(t, n, veths["app.ns.web.ns"], ebpf.AttachTCXIngress)) != 1 {
		t.Fatalf("after the repair: %+v", info.Attachments)
	}
	if links, _ := os.ReadDir(filepath.Join(pins, fw.ID, "links")); len(links) != 2 {
		t.Fatalf("link pins after the repair: %v", links)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.web.ns", 0)
	n.d.Stop(t)
	n.d = nstest.StartDaemon(t, netmanagerBin, n.ns, "--modules-dir", modulesDir, state, "--pin-dir", pins)
	n.stop(t)
}
