package main

import (
	"maps"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Drop reason codes, mirrored from proxy.h's PX_REASON_* (TestDropReasonsMatchC).
// Every drop also counts as the "errors" event.
const (
	reasonChecksum = 1 // PX_REASON_CHECKSUM
	reasonSession  = 2 // PX_REASON_SESSION
	reasonEncap    = 3 // PX_REASON_ENCAP
	reasonDecap    = 4 // PX_REASON_DECAP
)

// dropReasonMacros maps proxy.h's macro names to the codes Go uses.
var dropReasonMacros = map[string]uint32{
	"PX_REASON_CHECKSUM": reasonChecksum, "PX_REASON_SESSION": reasonSession,
	"PX_REASON_ENCAP": reasonEncap, "PX_REASON_DECAP": reasonDecap,
}

// dropReasonNames are the names DropReasons gives the codes.
var dropReasonNames = map[uint32]string{
	reasonChecksum: "checksum error", reasonSession: "session error",
	reasonEncap: "encap error", reasonDecap: "decap error",
}

// DropReasons names the data plane's drop reasons (module.DropReasoner).
func (p *Proxy) DropReasons() map[uint32]string { return maps.Clone(dropReasonNames) }

var _ module.DropReasoner = (*Proxy)(nil)
