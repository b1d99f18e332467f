package main

import (
	"encoding/json"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Any JSON rule set (the body of PUT /ebpf/{id}/rules, or the config's
// rules) is refused or compiles to tables with an action for every rule in
// priority order — never a panic.
func FuzzRuleSet(f *testing.F) {
	f.Add([]byte(`[{"id": "web", "action": "allow", "proto": "tcp", "dstPorts": "80-443", "src": "10.0.0.0/8"}, {"action": "deny"}]`))
	f.Add([]byte(`[{"action": "deny", "proto": "icmpv6", "dst": "fd00::/64", "direction": "ingress", "priority": 5}]`))
	f.Add([]byte(`[{"action": "allow", "proto": "udp", "srcPorts": "53", "dst": "10.30.0.1"}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var in []Rule
		if json.Unmarshal(body, &in) != nil {
			return
		}
		n := 0
		rs, err := ruleSet(in, 64, "rules", func() string { n++; return "r" + string(rune('a'+n%26)) + string(rune('a'+n/26%26)) })
		if err != nil {
			return
		}
		tb := compile(sortRules(rs))
		if len(tb.actions) != len(rs) || len(tb.order) != len(rs) || int(tb.words) != (len(rs)+63)/64 {
			t.Fatalf("%d rules compiled to %d actions, %d ids, %d words", len(rs), len(tb.actions), len(tb.order), tb.words)
		}
	})
}

// Random frames through both of the firewall's programs: each is judged —
// passed on or dropped, nothing else — and the same frame gets the same
// verdict from a stateless rule set.
func FuzzFirewallFrames(f *testing.F) {
	w := newFW(f, `{"stateful": false, "rules": [{"action": "deny", "proto": "icmp"}, {"action": "deny", "proto": "tcp", "dstPorts": "22", "src": "10.0.0.0/8"}, {"action": "allow", "proto": "udp", "dst": "fd00::/64"}]}`)
	f.Add(tcp4(f, "10.0.0.1", "10.0.0.2", 40000, 22))
	f.Add(udp4(f, "10.0.0.1", "10.0.0.2", 40000, 53))
	f.Add(tcp6(f, "fd00::1", "fd00::2", 40000, 80))
	f.Add(echo4(f, "10.0.0.1", "10.0.0.2", 8, 1))
	f.Fuzz(func(t *testing.T, frame []byte) {
		for _, prog := range []string{module.ProgramIngress, module.ProgramEgress} {
			var verdicts []int32
			for i := 0; i < 2; i++ {
				ret, err := w.coll.Programs[prog].Run(&ebpf.RunOptions{Data: frame})
				if err != nil {
					return // not an skb the kernel makes
				}
				verdicts = append(verdicts, int32(ret))
			}
			if (verdicts[0] != next && verdicts[0] != drop) || verdicts[0] != verdicts[1] {
				t.Fatalf("%s: verdicts %v for % x", prog, verdicts, frame)
			}
		}
	})
}
