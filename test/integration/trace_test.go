package integration

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/trace"
	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/client"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
)

// traceChain is what the kernel has on a veth's two TCX hooks.
func traceChain(t *testing.T, n *node, veth string) [][]ebpf.ProgramID {
	return [][]ebpf.ProgramID{tcxChain(t, n, veth, ebpf.AttachTCXIngress), tcxChain(t, n, veth, ebpf.AttachTCXEgress)}
}

// tracingLinks counts the tracing links on the chain's programs.
func tracingLinks(t *testing.T, chain [][]ebpf.ProgramID) int {
	t.Helper()
	total := 0
	for _, hook := range chain {
		for _, id := range hook {
			n, err := trace.LinksTo(uint32(id))
			if err != nil {
				t.Fatal(err)
			}
			total += n
		}
	}
	return total
}

// GET /ebpf/trace and /ebpf/drops on a real daemon with packetcounter and
// firewall (denying ICMP to a service, rule "denyin") on its veth. The
// daemon's probe (GET /version's kernel.features.tracing) agrees with this
// process's. Where the kernel refuses tracing programs (this sandbox's
// 6.18.44-fc), GET /ebpf/trace answers 422 with the refusal and netmanagerctl
// trace prints it and exits 3, and the chain is as it was,
// with no tracing link; where tracing works (the kernel matrix runs the full
// scenario in test/kernels), a denied ping is traced: packetcounter next,
// firewall drop (rule denyin), and nothing is left attached after the trace.
func TestTrace(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	a, b := newContainer(t), newContainer(t)
	deployContainer(t, n, a, "app.ns.tpinger.ns", 0, "")
	rb := deployContainer(t, n, b, "app.ns.tquiet.ns", 0, "")
	veth := ctlVeth(t, n, "app.ns.tquiet.ns")
	loadModule(t, n, `{"name": "packetcounter", "priority": 10}`)
	loadModule(t, n, `{"name": "firewall", "priority": 20, "services": ["app.ns.tquiet.ns"], "config": {"stateful": false,
		"rules": [{"id": "denyin", "action": "deny", "proto": "icmp"}]}}`)
	before := traceChain(t, n, veth)
	if len(before[0]) != 2 || len(before[1]) != 2 {
		t.Fatalf("chain on %s: %v, want 2 programs on each hook", veth, before)
	}
	if l := tracingLinks(t, before); l != 0 {
		t.Fatalf("%d tracing links before any trace", l)
	}

	probe := trace.Supported()
	var ver api.VersionInfo
	getJSON(t, n, "/version", &ver)
	if ver.Kernel == nil || ver.Kernel.Features[ebpfmanager.FeatureTracing] != (probe == nil) {
		t.Fatalf("GET /version kernel %+v: tracing should be %v (this process's probe: %v)", ver.Kernel, probe == nil, probe)
	}
	if probe != nil {
		traceRefused(t, n, probe)
	} else {
		traceDenied(t, n, a, rb.NsAddress)
	}
	after := traceChain(t, n, veth)
	if !slices.EqualFunc(before, after, slices.Equal) {
		t.Fatalf("chain on %s: %v before the traces, %v after", veth, before, after)
	}
	if l := tracingLinks(t, after); l != 0 {
		t.Fatalf("%d tracing links left after the traces", l)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.tpinger.ns", 0)
	undeploy(t, n, deploy.KindContainer, "app.ns.tquiet.ns", 0)
	n.stop(t)
}

// traceRefused: the trace, by the API and by netmanagerctl, refuses with
// the probe's error (the drop monitor needs no trampoline: TestDropMonitorFlood).
func traceRefused(t *testing.T, n *node, probe error) {
	t.Helper()
	if !errors.Is(probe, trace.ErrUnsupported) {
		t.Fatalf("the tracing probe could not tell: %v", probe)
	}
	want := "cannot be processed: " + probe.Error()
	if !strings.HasPrefix(probe.Error(), "tracing needs BPF trampolines (fentry/fexit on BPF programs), which this kernel refuses: ") ||
		!strings.HasSuffix(probe.Error(), "; traces work on Debian's 6.1 and later kernels") {
		t.Fatalf("refusal %q", probe)
	}
	for _, path := range []string{"/ebpf/trace?service=app.ns.tquiet.ns&duration=2s", "/ebpf/trace?duration=2s"} {
		var ce *client.Error
		err := n.d.Client.Stream(ctx(t), path, func(line []byte) error { return errors.New("a line: " + string(line)) })
		if !errors.As(err, &ce) || ce.Status != http.StatusUnprocessableEntity || ce.Message != want {
			t.Fatalf("GET %s: %v, want 422 %q", path, err, want)
		}
	}
	for _, args := range [][]string{{"trace", "--service", "app.ns.tquiet.ns", "--duration", "2s"}, {"trace", "--verdict", "drop"}} {
		r := ctl(t, n, args...)
		if r.rc != 3 || r.out != "" || r.errs != "netmanagerctl: HTTP 422: "+want+"\n" {
			t.Fatalf("netmanagerctl %v: exit %d, stdout %q, stderr %q; want 3 and the refusal", args, r.rc, r.out, r.errs)
		}
	}
}

// traceDenied traces the denied service while the pinger pings it, until a
// path shows the firewall's drop by rule denyin.
func traceDenied(t *testing.T, n *node, pinger *container, dst string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx(t), 20*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c.Err() == nil {
			_, _ = pinger.ns.Exec("ping", "-c", "1", "-W", "1", dst) // denied: no answer
		}
	}()
	var got ebpfmanager.PacketPath
	err := n.d.Client.Stream(c, "/ebpf/trace?service=app.ns.tquiet.ns&proto=icmp&verdict=drop&count=1", func(line []byte) error {
		return json.Unmarshal(line, &got)
	})
	cancel()
	<-done
	if err != nil {
		t.Fatalf("trace: %v", err)
	}
	h := got.Hops
	if len(h) != 2 || h[0].Module != "packetcounter" || h[0].Verdict != "next" || h[1].Module != "firewall" ||
		h[1].Verdict != "drop" || h[1].Reason != "rule" || h[1].DetailName != "denyin" || got.Dst != dst {
		t.Fatalf("traced path %+v, want packetcounter next, firewall drop (rule denyin) to %s", got, dst)
	}
}
