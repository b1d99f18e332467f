package main

import (
	"strings"
	"testing"
	"time"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
)

// TestRenderPath: a traced path, a drop monitor's unattributed drop of
// unknown direction, and a notice, one line each.
func TestRenderPath(t *testing.T) {
	at := time.Date(2026, 1, 2, 12, 31, 11, 123456000, time.UTC)
	for _, c := range []struct {
		p    ebpfmanager.PacketPath
		want string
	}{
		{ebpfmanager.PacketPath{Time: at, Interface: "oak5", Service: "a/0", Direction: "out", Proto: "udp", Src: "10.18.0.5", Dst: "10.30.0.1", Sport: 1000, Dport: 53, Len: 60,
			Hops: []ebpfmanager.Hop{{Instance: "2", Module: "firewall", Verdict: "drop", Reason: "rule", Detail: 4101, DetailName: "denyudp"}}},
			"12:31:11.123456 oak5 a/0 out udp 10.18.0.5:1000 > 10.30.0.1:53 len 60: 2 firewall drop (rule denyudp)\n"},
		{ebpfmanager.PacketPath{Time: at, Interface: "eth0", Direction: "unknown", Proto: "icmp", Src: "10.0.0.1", Dst: "10.0.0.2", Len: 84,
			Hops: []ebpfmanager.Hop{{Verdict: "drop", Reason: "unspecified"}}},
			"12:31:11.123456 eth0 unknown icmp 10.0.0.1 > 10.0.0.2 len 84: unattributed drop (unspecified)\n"},
		{ebpfmanager.PacketPath{Time: at, Suppressed: 95}, "12:31:11.123456 95 drops not shown (rate limit)\n"},
	} {
		var b strings.Builder
		if err := renderPath(&b, c.p, "drops"); err != nil || b.String() != c.want {
			t.Errorf("%q (%v), want %q", b.String(), err, c.want)
		}
	}
}
