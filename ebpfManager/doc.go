// Package ebpfmanager is the eBPF Manager: it loads eBPF modules (a Go-plugin
// control plane and a TC data plane) into a running NetManager, chains their
// programs by priority on every service veth (or on named host interfaces),
// updates them in place, keeps them declared across restarts and takes them
// back after one, and manages their whole life over the /ebpf REST routes.
//
// Before a module's control plane is opened, its data plane's needs (the
// helpers its programs call, its map types, kernel BTF, bpf_skb_adjust_room
// flags — read from its object by Kernel.Needs) are checked against the
// kernel's feature probes (Kernel.Probe): a module needing what the kernel
// lacks is refused with a MissingFeaturesError (422) that names it, with
// nothing loaded, attached or pinned. An optional need (the decap flags of
// bpf_skb_adjust_room, which a data plane may fall back from) refuses
// nothing: a kernel without it gets the module and a warning in the log.
//
// Decisions — where a program goes in a chain, which instances apply to which
// interface, which pinned attachments a restart left stray, which needs the
// kernel lacks — are pure functions over plain data (chain.go, scope.go,
// declared.go, features.go). Every side effect, pins, module files and
// feature probes included, goes through the Kernel, Plugins and Store
// interfaces; the real implementations live in the kernel subpackage and the
// unit tests use fakes. Of the NetManager it imports only its events, service
// table, error classes and JSON edge (httpjson).
package ebpfmanager
