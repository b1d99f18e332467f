package bpftest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// AttachIngress puts prog on the TC ingress hook of the interface ifindex,
// in the namespace do runs in (nstest.Netns.Do): with a TCX link where the
// kernel has TCX (6.6 and later), else with a clsact qdisc and a
// direct-action cls_bpf filter, as the eBPF Manager's legacy mode does. It
// is removed when the test ends and returns which of the two it used.
func AttachIngress(t testing.TB, do func(func() error) error, ifindex int, prog *ebpf.Program) (mode string) {
	t.Helper()
	var tcx link.Link
	err := do(func() (err error) {
		tcx, err = link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
		return err
	})
	if err == nil {
		t.Cleanup(func() { tcx.Close() })
		return "tcx"
	}
	if !errors.Is(err, ebpf.ErrNotSupported) {
		t.Fatalf("attach tcx to ifindex %d: %v", ifindex, err)
	}
	qdisc := &netlink.GenericQdisc{QdiscType: "clsact", QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}}
	filter := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: ifindex, Parent: netlink.HANDLE_MIN_INGRESS, Handle: 1,
			Priority: 1, Protocol: unix.ETH_P_ALL},
		Fd: prog.FD(), Name: "bpftest", DirectAction: true,
	}
	if err := do(func() error {
		if err := netlink.QdiscAdd(qdisc); err != nil {
			return fmt.Errorf("add clsact: %w", err)
		}
		return netlink.FilterAdd(filter)
	}); err != nil {
		t.Fatalf("attach tc filter to ifindex %d (no TCX here): %v", ifindex, err)
	}
	t.Cleanup(func() { _ = do(func() error { return netlink.QdiscDel(qdisc) }) })
	return "legacy"
}
