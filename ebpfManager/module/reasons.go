package module

// DropsMap is the per-CPU array bpf/reasons.h's nm_drop counts drops in, by
// reason code.
const DropsMap = "nm_drops"

// DropReasoner is implemented by a module whose data plane says why it drops
// packets (bpf/reasons.h: return nm_drop(skb, reason, detail)). DropReasons
// names every reason code the data plane uses (1..63; 0 is "unspecified").
// The eBPF Manager shows the names in traces and the drop monitor, and
// exports the data plane's nm_drops counts by name in GET /metrics.
//
// Names are short, lower case, words separated by spaces ("default deny",
// "rule"); a detail the data plane passes (a rule id) is shown after the
// name ("rule 7"). The interface is optional: a module without it still has
// its drops traced, with the reason "unspecified".
type DropReasoner interface {
	DropReasons() map[uint32]string
}

// DropDetailer is implemented by a module whose drop details mean something
// only its control plane knows: DropDetail names the detail a data plane
// passed to nm_drop with reason (the firewall answers a rule's id for the
// slot it dropped by). ok is false when the detail names nothing (any more);
// traces then show the number. Optional; read while tracing only.
type DropDetailer interface {
	DropDetail(reason, detail uint32) (name string, ok bool)
}
