/* Why a data plane drops a packet (issue 23): read by the eBPF Manager's
 * tracer and counted for GET /metrics.
 *
 * A program that drops says why:
 *
 *	return nm_drop(skb, FW_REASON_RULE, rule_id);
 *
 * nm_drop writes the reason into the packet's control block (cb[3] holds
 * NM_REASON_MAGIC | reason, cb[4] the detail, e.g. a rule id, cb[2] the
 * instance id nm_instance, which the loader sets), counts the
 * drop in the per-CPU array nm_drops (indexed by reason), and returns
 * NM_DROP. The control plane names its reason codes (module.DropReasoner);
 * code 0 is reserved ("unspecified"). A drop without nm_drop is still a drop
 * and still traced, but carries no reason and is not counted here.
 *
 * The drop monitor (a kfree_skb tracepoint program) reads the control block
 * of every freed packet and reports the ones carrying the magic.
 *
 * The cost is paid on the drop path only: three stores and a per-CPU array
 * increment. The tracer reads the reason only from programs that returned
 * NM_DROP, so a stale control block on a packet that goes on cannot be
 * mistaken for one. */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "verdicts.h"

#define NM_REASON_MAGIC (0x4e4d5200u) /* "NMR" and the reason in the low byte */
#define NM_REASON_MASK (0xffffff00u)
#define NM_REASONS_MAX (64) /* reason codes are 1..NM_REASONS_MAX-1 */
#define NM_REASON_CB (3)    /* cb[] index of magic|reason */
#define NM_DETAIL_CB (4)    /* cb[] index of the detail */
#define NM_INSTANCE_CB (2)  /* cb[] index of the dropping instance's id */

/* nm_instance is the id of the module instance this object is loaded as:
 * the eBPF Manager's loader sets it at load (it is 0 in a test that does
 * not). A const volatile global lands in .rodata and is a constant to the
 * verifier; one definition per object, as every data plane is one .bpf.c
 * that includes this header once. */
const volatile __u32 nm_instance = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NM_REASONS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} nm_drops SEC(".maps");

/* nm_drop records why the packet is dropped and returns NM_DROP. */
static __always_inline int nm_drop(struct __sk_buff *skb, __u32 reason, __u32 detail)
{
	__u32 key = reason & (NM_REASONS_MAX - 1);
	__u64 *n;

	skb->cb[NM_INSTANCE_CB] = nm_instance;
	skb->cb[NM_REASON_CB] = NM_REASON_MAGIC | key;
	skb->cb[NM_DETAIL_CB] = detail;
	n = bpf_map_lookup_elem(&nm_drops, &key);
	if (n)
		*n += 1;
	return NM_DROP;
}
