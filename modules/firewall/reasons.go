package main

import (
	"maps"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Drop reason codes, mirrored from firewall.h's FW_REASON_* (TestDropReasonsMatchC).
const (
	reasonRule        = 1 // FW_REASON_RULE; detail: the rule's slot
	reasonDefaultDeny = 2 // FW_REASON_DEFAULT_DENY
	reasonMalformed   = 3 // FW_REASON_MALFORMED
)

// dropReasonMacros maps firewall.h's macro names to the codes Go uses.
var dropReasonMacros = map[string]uint32{
	"FW_REASON_RULE": reasonRule, "FW_REASON_DEFAULT_DENY": reasonDefaultDeny, "FW_REASON_MALFORMED": reasonMalformed,
}

// dropReasonNames are the names DropReasons gives the codes.
var dropReasonNames = map[uint32]string{
	reasonRule: "rule", reasonDefaultDeny: "default deny", reasonMalformed: "malformed",
}

// DropReasons names the data plane's drop reasons (module.DropReasoner).
func (f *Firewall) DropReasons() map[uint32]string { return maps.Clone(dropReasonNames) }

// DropDetail names the detail of a drop: for reasonRule, the id of the rule
// in that slot (gen * FW_MAX_RULES + index, the data plane's key of rules
// and hits). A slot names the rule of the set that dropped the packet until
// the set changes twice more (each change rewrites the other generation).
// ok is false for another reason or a slot no rule holds.
func (f *Firewall) DropDetail(reason, detail uint32) (string, bool) {
	if reason != reasonRule {
		return "", false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gens.ruleAt(detail)
}

// ruleAt returns the id of the rule in a slot of either generation.
func (g *generations) ruleAt(slot uint32) (string, bool) {
	gen, idx := slot/fwMaxRules, int(slot%fwMaxRules)
	if gen > 1 || idx >= len(g.order[gen]) {
		return "", false
	}
	return g.order[gen][idx], true
}

var _ module.DropReasoner = (*Firewall)(nil)
