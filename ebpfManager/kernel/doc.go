// Package kernel is the eBPF Manager's side of the kernel: loading data planes
// (cilium/ebpf) with their maps pinned, attaching programs with TCX links or
// legacy clsact/cls_bpf filters (netlink), reading chains back, probing which
// of the two the kernel offers, and opening Go-plugin control planes. It
// implements ebpfmanager.Kernel and ebpfmanager.Plugins; every interface is
// resolved in the calling process's network namespace.
package kernel
