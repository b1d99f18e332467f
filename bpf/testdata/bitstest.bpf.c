/* Exercises bits.h: reads a little-endian u64 from the frame's first eight
 * bytes and writes lowest_bit and popcount64 of it over the next eight. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "bits.h"
#include "verdicts.h"

NM_PROG int bits(struct __sk_buff *skb)
{
	__u64 x;
	__u32 out[2];
	if (bpf_skb_load_bytes(skb, 0, &x, sizeof(x)))
		return NM_DROP;
	out[0] = lowest_bit(x);
	out[1] = popcount64(x);
	if (bpf_skb_store_bytes(skb, sizeof(x), out, sizeof(out), 0))
		return NM_DROP;
	return NM_NEXT;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
