package main

import (
	"maps"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Drop reason codes, mirrored from sdwan.h's SD_REASON_* (TestDropReasonsMatchC).
const (
	reasonDefaultDrop = 1 // SD_REASON_DEFAULT_DROP
	reasonFARDrop     = 2 // SD_REASON_FAR_DROP; detail: the rule's slot
	reasonNoWAN       = 3 // SD_REASON_NO_WAN
	reasonMTU         = 4 // SD_REASON_MTU; detail: the WAN's index
	reasonEncapError  = 5 // SD_REASON_ENCAP_ERROR; detail: the WAN's index
	reasonUnknownPeer = 6 // SD_REASON_UNKNOWN_PEER; detail: the WAN's index
	reasonMalformed   = 7 // SD_REASON_MALFORMED; detail: the WAN's index
	reasonDecapError  = 8 // SD_REASON_DECAP_ERROR; detail: the WAN's index
)

// dropReasonMacros maps sdwan.h's macro names to the codes Go uses.
var dropReasonMacros = map[string]uint32{
	"SD_REASON_DEFAULT_DROP": reasonDefaultDrop, "SD_REASON_FAR_DROP": reasonFARDrop, "SD_REASON_NO_WAN": reasonNoWAN,
	"SD_REASON_MTU": reasonMTU, "SD_REASON_ENCAP_ERROR": reasonEncapError, "SD_REASON_UNKNOWN_PEER": reasonUnknownPeer,
	"SD_REASON_MALFORMED": reasonMalformed, "SD_REASON_DECAP_ERROR": reasonDecapError,
}

// dropReasonNames are the names DropReasons gives the codes: the counters
// of GET /ebpf/{id}/stats they go with, in words.
var dropReasonNames = map[uint32]string{
	reasonDefaultDrop: "default drop", reasonFARDrop: "far drop", reasonNoWAN: "no wan", reasonMTU: "mtu",
	reasonEncapError: "encap error", reasonUnknownPeer: "unknown peer", reasonMalformed: "malformed",
	reasonDecapError: "decap error",
}

// DropReasons names the data plane's drop reasons (module.DropReasoner).
func (g *SDWAN) DropReasons() map[uint32]string { return maps.Clone(dropReasonNames) }

var _ module.DropReasoner = (*SDWAN)(nil)
