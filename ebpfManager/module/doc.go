// Package module is the SDK for eBPF Manager modules: the only package of this
// repository a module's control plane imports.
//
// A module named N is a directory N/ in the NetManager's modules directory with
// two files built from the same source tree:
//
//   - N.o, the data plane: TC (SchedCLS) programs named ProgramIngress
//     ("nm_ingress") and/or ProgramEgress ("nm_egress"), returning TC_ACT_UNSPEC
//     ("next", NM_NEXT in bpf/verdicts.h) when they have no opinion;
//   - N.so, the control plane: a Go plugin (package main, built with
//     -buildmode=plugin and the same toolchain and flags as the daemon) that
//     exports New with the NewFunc signature and, optionally, MapSizes with the
//     MapSizesFunc signature.
//
// Life of a module instance: the manager calls MapSizes (if exported) with the
// instance's config, loads N.o once with those map sizes, calls New with a Base
// carrying the loaded DataPlane, then calls Attach for every interface the
// programs were attached to (every service veth, or the host interfaces named
// in the request), Detach when an interface goes away, and Close when the
// instance is deleted. Every call is guarded: a panic marks the instance failed
// instead of taking the daemon down.
//
// See docs/module-authoring.md for a complete minimal module.
package module
