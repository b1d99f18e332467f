// Package kfeatures answers data-plane tests what the running kernel offers,
// probed as the daemon probes it (ebpfManager/kernel.Prober), so that a test
// asserts the behaviour documented for a kernel without a feature instead of
// failing there. It is its own package because the kernel package's tests
// use test/bpftest.
package kfeatures

import (
	"testing"

	"github.com/oakestra/netmanager/ebpfManager/kernel"
)

// Have says whether the kernel offers the named feature (a name of
// GET /version's kernel.features); a probe that cannot tell fails the test.
func Have(t testing.TB, feature string) bool {
	t.Helper()
	p, err := kernel.NewProber(nil)
	if err != nil {
		t.Fatalf("kernel prober: %v", err)
	}
	pr := p.Have(feature)
	if pr.Err != nil {
		t.Fatalf("probe %s: %v", feature, pr.Err)
	}
	return pr.Have
}

// DecapFlags says whether the kernel knows bpf_skb_adjust_room's
// BPF_F_ADJ_ROOM_DECAP_L3_* flags (Linux 6.3). Without them a data plane can
// take an IPv4 packet out of an outer IPv4 header (bpf/encap.h's nm_decap4
// falls back) but not an IPv6 one, which it refuses and counts.
func DecapFlags(t testing.TB) bool { return Have(t, "adjust_room_decap") }
