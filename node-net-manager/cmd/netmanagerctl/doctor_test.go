package main

import "testing"

const (
	healthyReport = `{"healthy": true, "problems": [{"kind": "kernel-feature", "severity": "warning", "subject": "module proxy",
  "message": "module proxy uses what this kernel lacks: adjust_room_decap; the calls that use it fail at run time unless the data plane falls back"}],
  "summary": {"mode": "tcx", "instances": 2, "failed": 0, "hooks": 4, "programs": 8, "foreign": 0, "pins": 12, "errors": 0, "warnings": 1, "declared": 2}}`
	sickReport = `{"healthy": false, "problems": [{"kind": "foreign-program", "severity": "error", "subject": "oak1 ingress",
  "message": "program 77 \"intruder\" (tag 0123456789abcdef) at position 0 on oak1 ingress is not ours and runs before our first program",
  "foreign": {"interface": "oak1", "ifindex": 7, "hook": "ingress", "id": 77, "name": "intruder", "tag": "0123456789abcdef", "position": 0, "endsChain": true}},
  {"kind": "stray-pin", "severity": "error", "subject": "/sys/fs/bpf/nm/x", "message": "/sys/fs/bpf/nm/x is pinned but no module instance owns it"}],
  "summary": {"mode": "tcx", "instances": 2, "failed": 0, "hooks": 4, "programs": 8, "foreign": 1, "pins": 12, "errors": 2, "warnings": 0, "declared": 2}}`
)

// doctor prints one line per problem and a summary; it exits 0 on a
// healthy report (warnings or not) and 1 on an unhealthy one, in either
// output format.
func TestDoctor(t *testing.T) {
	for _, tc := range []struct {
		report string
		args   []string
		rc     int
		out    []string
		errs   string
	}{
		{healthyReport, []string{"doctor"}, 0, []string{"warning kernel-feature      module proxy uses", "healthy: 2 module instances (0 failed), 4 interface hooks checked (tcx), 0 foreign programs, 12 pins; 0 errors, 1 warnings"}, ""},
		{healthyReport, []string{"doctor", "-o", "json"}, 0, []string{`"healthy": true`}, ""},
		{sickReport, []string{"doctor"}, 1, []string{"error   foreign-program     program 77 \"intruder\"", "error   stray-pin", "unhealthy: 2 module instances"}, "netmanagerctl: doctor: the node is unhealthy: 2 errors, 0 warnings"},
		{sickReport, []string{"-o", "json", "doctor"}, 1, []string{`"endsChain": true`, `"kind": "stray-pin"`}, "the node is unhealthy"},
		{`{"healthy": tru`, []string{"doctor"}, 1, nil, "bad answer from the NetManager"},
	} {
		f := newFakeDaemon(t, map[string]answer{"GET /ebpf/doctor": {body: tc.report}})
		f.expect(t, tc.args, tc.rc, tc.out, tc.errs)
		if got := f.take(); len(got) != 1 || got[0].path != "/ebpf/doctor" || got[0].method != "GET" {
			t.Errorf("%v: requests %+v", tc.args, got)
		}
	}
	f := newFakeDaemon(t, map[string]answer{"GET /ebpf/doctor": {500, `{"error": "boom"}`}})
	if rc, _, _ := f.ctl("doctor"); rc != 1 {
		t.Errorf("a failing daemon: rc %d", rc)
	}
	if rc, _, _ := f.ctl("doctor", "extra"); rc != 2 {
		t.Errorf("an extra argument: rc %d", rc)
	}
}
