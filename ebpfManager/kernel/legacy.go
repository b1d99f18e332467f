package kernel

import (
	"errors"
	"fmt"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/module"
)

func legacyParent(h module.Hook) uint32 {
	if h == module.HookEgress {
		return netlink.HANDLE_MIN_EGRESS
	}
	return netlink.HANDLE_MIN_INGRESS
}

// legacyChain lists the cls_bpf programs on a hook in run order (ascending
// filter priority).
func legacyChain(ifindex int, h module.Hook) ([]uint32, error) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil, err
	}
	filters, err := netlink.FilterList(l, legacyParent(h))
	if err != nil {
		return nil, fmt.Errorf("list filters on %s: %w", l.Attrs().Name, err)
	}
	var bpf []*netlink.BpfFilter
	for _, f := range filters {
		if b, ok := f.(*netlink.BpfFilter); ok {
			bpf = append(bpf, b)
		}
	}
	sort.SliceStable(bpf, func(i, j int) bool { return bpf[i].Priority < bpf[j].Priority })
	ids := make([]uint32, len(bpf))
	for i, b := range bpf {
		ids[i] = uint32(b.Id)
	}
	return ids, nil
}

type legacyLink struct {
	k       *Kernel
	filter  *netlink.BpfFilter
	ifindex int
	adopted bool
}

func (l *legacyLink) Adopted() bool { return l.adopted }

// Release leaves the filter in place (it holds its program); this link no
// longer counts towards the interface's filters.
func (l *legacyLink) Release() error {
	l.k.mu.Lock()
	defer l.k.mu.Unlock()
	l.k.filters[l.ifindex]--
	return nil
}

// Repin: a filter has no pin.
func (l *legacyLink) Repin(string) error { return nil }

// Close deletes the filter, and the clsact qdisc with our last filter if we
// created it. An interface that is already gone took both with it.
func (l *legacyLink) Close() error {
	err := netlink.FilterDel(l.filter)
	if isGone(err) {
		err = nil
	}
	l.k.mu.Lock()
	defer l.k.mu.Unlock()
	l.k.filters[l.ifindex]--
	if l.k.filters[l.ifindex] > 0 {
		return err
	}
	delete(l.k.filters, l.ifindex)
	if l.k.clsact[l.ifindex] {
		delete(l.k.clsact, l.ifindex)
		if derr := netlink.QdiscDel(clsact(l.ifindex)); derr != nil && !isGone(derr) {
			err = errors.Join(err, fmt.Errorf("delete clsact: %w", derr))
		}
	}
	return err
}

func isGone(err error) bool {
	return err != nil && (errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) ||
		errors.As(err, new(netlink.LinkNotFoundError)))
}

func clsact(ifindex int) *netlink.GenericQdisc {
	return &netlink.GenericQdisc{QdiscType: "clsact", QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}}
}

// ensureClsact adds a clsact qdisc unless the interface has one; the caller holds mu.
func (k *Kernel) ensureClsact(ifindex int) error {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return err
	}
	qdiscs, err := netlink.QdiscList(l)
	if err != nil {
		return fmt.Errorf("list qdiscs: %w", err)
	}
	for _, q := range qdiscs {
		if q.Type() == "clsact" {
			return nil
		}
	}
	if err := netlink.QdiscAdd(clsact(ifindex)); err != nil {
		return fmt.Errorf("add clsact: %w", err)
	}
	k.clsact[ifindex] = true
	return nil
}

func (k *Kernel) attachLegacy(req ebpfmanager.AttachRequest, prog *ebpf.Program) (ebpfmanager.Link, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.ensureClsact(req.Ifindex); err != nil {
		return nil, fmt.Errorf("attach tc filter to %s: %w", req.Ifname, err)
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: req.Ifindex, Parent: legacyParent(req.Hook), Handle: 1,
			Priority: req.Place.Priority, Protocol: unix.ETH_P_ALL},
		Fd: prog.FD(), Name: fmt.Sprintf("nm-%s", req.Hook.Program()), DirectAction: true,
	}
	add := netlink.FilterAdd
	adopted := false
	if req.Adopt {
		// An earlier run's filter at this priority is replaced in one step.
		adopted = hasFilter(req.Ifindex, legacyParent(req.Hook), req.Place.Priority)
		add = netlink.FilterReplace
	}
	if err := add(f); err != nil {
		if k.filters[req.Ifindex] == 0 && k.clsact[req.Ifindex] {
			delete(k.clsact, req.Ifindex)
			_ = netlink.QdiscDel(clsact(req.Ifindex))
		}
		return nil, fmt.Errorf("attach tc filter to %s (priority %d): %w", req.Ifname, req.Place.Priority, err)
	}
	k.filters[req.Ifindex]++
	return &legacyLink{k: k, filter: f, ifindex: req.Ifindex, adopted: adopted}, nil
}

// hasFilter says whether a bpf filter sits at prio on the hook.
func hasFilter(ifindex int, parent uint32, prio uint16) bool {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return false
	}
	fs, err := netlink.FilterList(l, parent)
	if err != nil {
		return false
	}
	for _, f := range fs {
		if b, ok := f.(*netlink.BpfFilter); ok && b.Priority == prio {
			return true
		}
	}
	return false
}
