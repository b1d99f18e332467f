/* The kernel's floor under an encapsulating data plane: programs that do
 * nothing but one helper call each, the calls the GRE gateway and the
 * proxy's tunnel make per packet, timed by BenchmarkHelperFloor beside a
 * program that makes none. */
#include <linux/if_ether.h>
#include "encap.h"
#include "verdicts.h"

NM_PROG int none(struct __sk_buff *skb)
{
	return NM_NEXT;
}

/* Room for outer IPv4 + GRE after the Ethernet header, as the gateway's
 * encapsulation makes it. */
NM_PROG int grow_gre(struct __sk_buff *skb)
{
	return bpf_skb_adjust_room(skb, NM_GRE4_OVERHEAD, BPF_ADJ_ROOM_MAC, NM_ENCAP_GRE4_FLAGS) ? NM_DROP : NM_NEXT;
}

/* The same room at the front of the frame: no tunnel marks for GSO, no
 * Ethernet header moved, the network header left on the inner packet. */
NM_PROG int grow_head(struct __sk_buff *skb)
{
	return bpf_skb_change_head(skb, NM_GRE4_OVERHEAD, 0) ? NM_DROP : NM_NEXT;
}

/* Removing outer IPv4 + GRE, as the gateway's decapsulation does. */
NM_PROG int shrink_gre(struct __sk_buff *skb)
{
	return nm_decap4(skb, NM_GRE4_OVERHEAD, 0) ? NM_DROP : NM_NEXT;
}

/* A helper that does almost nothing: the cost of any call and return. */
NM_PROG int clock(struct __sk_buff *skb)
{
	return bpf_ktime_get_ns() ? NM_NEXT : NM_DROP;
}

/* A redirect, as both paths end. */
NM_PROG int redirect(struct __sk_buff *skb)
{
	return bpf_redirect(skb->ifindex, 0);
}

char _license[] SEC("license") = "GPL";
