/* Exercises reasons.h: reads a little-endian reason code and detail from the
 * frame's first eight bytes and drops the packet with them. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "reasons.h"
#include "verdicts.h"

NM_PROG int drop(struct __sk_buff *skb)
{
	__u32 in[2];
	if (bpf_skb_load_bytes(skb, 0, in, sizeof(in)))
		return NM_NEXT;
	return nm_drop(skb, in[0], in[1]);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
