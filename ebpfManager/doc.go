// Package ebpfmanager is the eBPF Manager: it loads eBPF modules (a Go-plugin
// control plane and a TC data plane) into a running NetManager, chains their
// programs by priority on every service veth (or on named host interfaces), and
// manages their whole life over the /ebpf REST routes.
//
// Decisions — where a program goes in a chain, which instances apply to which
// interface — are pure functions over plain data (chain.go, scope.go). Every
// side effect goes through the Kernel and Plugins interfaces; the real
// implementations live in the kernel subpackage and the unit tests use fakes.
package ebpfmanager
