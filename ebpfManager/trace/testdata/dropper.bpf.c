/* A chain program for the tracer's tests: drops UDP with reason 3 and
 * detail 7 (nm_drop), redirects TCP (verdict only), lets the rest go on. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

#include "verdicts.h"
#include "reasons.h"

char LICENSE[] SEC("license") = "GPL";

NM_PROG int nm_ingress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP))
		return NM_NEXT;
	if (ip->protocol == 17)
		return nm_drop(skb, 3, 7);
	if (ip->protocol == 6)
		return NM_REDIRECT;
	return NM_NEXT;
}
