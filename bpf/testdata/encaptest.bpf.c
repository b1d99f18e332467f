/* Exercises the inter-node tunnel helpers of encap.h: encapsulates the
 * frame's L3 packet for the tunnel configured in the map. */
#include <linux/if_ether.h>
#include "encap.h"
#include "verdicts.h"

struct tunnel {
	__be32 saddr, daddr;
	__be16 sport, dport;
	__u32 ttl;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tunnel);
} tunnels SEC(".maps");

NM_PROG int encap_udp4(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct tunnel *tun = bpf_map_lookup_elem(&tunnels, &zero);
	if (!tun)
		return NM_DROP;
	__u32 inner_len = skb->len - sizeof(struct ethhdr);
	if (bpf_skb_adjust_room(skb, NM_UDP4_OVERHEAD, BPF_ADJ_ROOM_MAC, NM_ENCAP_UDP4_FLAGS))
		return NM_DROP;
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return NM_DROP;
	eth->h_proto = bpf_htons(ETH_P_IP); /* an inner IPv6 packet rides in IPv4 */
	__u32 base = outer4_csum_base_proto(tun->saddr, tun->daddr, tun->ttl, IPPROTO_UDP);
	udp4_tunnel_fill(ip, udp, base, tun->saddr, tun->daddr, tun->sport, tun->dport, tun->ttl, inner_len);
	return NM_NEXT;
}

/* decap_udp4 takes the inner packet out of a tunnel datagram to the
 * configured port; anything else — other traffic, and the tunnel's RTT
 * probes, whose first payload byte is 0 — passes untouched. */
NM_PROG int decap_udp4(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct tunnel *tun = bpf_map_lookup_elem(&tunnels, &zero);
	if (!tun)
		return NM_DROP;
	int v6 = udp4_tunnel_inner(skb, tun->dport);
	if (v6 < 0)
		return NM_NEXT;
	if (nm_decap4(skb, NM_UDP4_OVERHEAD, v6))
		return NM_DROP;
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return NM_DROP;
	eth->h_proto = v6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP);
	return NM_NEXT;
}

char LICENSE[] SEC("license") = "GPL";
