// Package ebpfmanager is the eBPF Manager: it loads eBPF modules (a Go-plugin
// control plane and a TC data plane) into a running NetManager, chains their
// programs by priority on every service veth (or on named host interfaces),
// updates them in place, keeps them declared across restarts and takes them
// back after one, and manages their whole life over the /ebpf REST routes.
//
// Decisions — where a program goes in a chain, which instances apply to which
// interface, which pinned attachments a restart left stray — are pure
// functions over plain data (chain.go, scope.go, declared.go). Every side
// effect, pins and module files included, goes through the Kernel, Plugins
// and Store interfaces; the real implementations live in the kernel
// subpackage and the unit tests use fakes. Of the NetManager it imports only
// its events, service table, error classes and JSON edge (httpjson).
package ebpfmanager
