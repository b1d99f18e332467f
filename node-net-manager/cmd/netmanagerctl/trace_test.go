package main

import (
	"strings"
	"testing"
)

const traceLines = `{"time":"2026-12-07T12:31:11.123456Z","interface":"oak5","ifindex":5,"service":"a/0","hook":"ingress","direction":"out","proto":"icmp","src":"10.18.0.5","dst":"10.18.0.6","len":84,"hops":[{"instance":"1","module":"packetcounter","priority":10,"verdict":"next"},{"instance":"2","module":"firewall","priority":20,"verdict":"drop","reason":"rule","detail":7}]}
{"time":"2026-12-07T12:31:11.2Z","interface":"oak5","direction":"in","proto":"tcp","src":"10.18.0.6","dst":"10.30.0.1","sport":4000,"dport":80,"len":60,"hops":[{"instance":"3","module":"proxy","priority":30,"verdict":"redirect"}]}
{"time":"2026-12-07T12:31:12Z","suppressed":12}
{"time":"2026-12-07T12:31:13Z","interface":"oak5","direction":"out","proto":"icmp","src":"10.18.0.5","dst":"10.18.0.7","len":84,"hops":[{"instance":"2","module":"firewall","priority":20,"verdict":"drop","reason":"rule","detail":4101,"detailName":"denyin"}]}
`

// trace and monitor print one line per packet with its hops, a notice for
// what the rate limit hid, or the JSON lines as they came.
func TestTraceAndMonitor(t *testing.T) {
	f := newFakeDaemon(t, map[string]answer{"GET /ebpf/trace": {body: traceLines}, "GET /ebpf/drops": {body: traceLines}})
	for _, tc := range []struct {
		args []string
		rc   int
		out  []string
		errs string
	}{
		{[]string{"trace", "--service", "a", "--proto", "icmp"}, 0, []string{
			"12:31:11.123456 oak5 a/0 out icmp 10.18.0.5 > 10.18.0.6 len 84: 1 packetcounter next, 2 firewall drop (rule 7)\n",
			"oak5 in tcp 10.18.0.6:4000 > 10.30.0.1:80 len 60: 3 proxy redirect\n",
			"12 events not shown (rate limit)",
			"oak5 out icmp 10.18.0.5 > 10.18.0.7 len 84: 2 firewall drop (rule denyin)\n"}, ""},
		{[]string{"trace", "-o", "json"}, 0, []string{`"suppressed":12}` + "\n", `"detail":7}]}` + "\n"}, ""},
		{[]string{"monitor", "--drops", "--rate", "10"}, 0, []string{"12 drops not shown"}, ""},
		{[]string{"monitor"}, 2, nil, "monitor: say what to monitor: --drops"},
		{[]string{"trace", "--port", "x"}, 2, nil, "invalid value"},
	} {
		f.expect(t, tc.args, tc.rc, tc.out, tc.errs)
	}
	f = newFakeDaemon(t, map[string]answer{"GET /ebpf/trace": {400, `{"error": "invalid request: parameter direction=\"up\": want in or out"}`}})
	if rc, _, errs := f.ctl("trace", "--direction", "up"); rc != 3 || !strings.Contains(errs, "parameter direction") {
		t.Errorf("a refused trace: rc %d, %q", rc, errs)
	}
	// A kernel that refuses tracing programs: the daemon's 422, printed, exit 3.
	const refusal = "cannot be processed: tracing needs BPF trampolines (fentry/fexit on BPF programs), which this kernel refuses: fexit program: load program: operation not permitted; traces work on Debian's 6.1 and later kernels"
	f = newFakeDaemon(t, map[string]answer{"GET /ebpf/trace": {422, `{"error": "` + refusal + `"}`}, "GET /ebpf/drops": {422, `{"error": "` + refusal + `"}`}})
	for _, args := range [][]string{{"trace"}, {"monitor", "--drops"}} {
		if rc, out, errs := f.ctl(args...); rc != 3 || errs != "netmanagerctl: HTTP 422: "+refusal+"\n" || out != "" {
			t.Errorf("%v on a kernel that refuses tracing: rc %d, stdout %q, stderr %q; want 3 and the refusal", args, rc, out, errs)
		}
	}
}
