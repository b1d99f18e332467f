/* proxy: the inter-node tunnel in the data plane, in the user-space
 * tunnel's wire format (bpf/encap.h): a translated packet for an instance
 * on another node leaves in IPv4/UDP from node_ip:tunnel_port to that
 * node's tunnel, out of the underlay with the next hop's MACs from
 * bpf_fib_lookup; a tunnel datagram arriving on the underlay from a peer is
 * checked as the user-space tunnel checks it, decapsulated and delivered
 * straight into the target's namespace. What this cannot do (no route, too
 * big, a sender or flow it does not know) it passes on untouched, counted by
 * reason, and the user-space tunnel serves it. */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "common.bpf.h"
#include "encap.h"

#ifndef AF_INET
#define AF_INET (2)
#endif

#define PX_TUNNEL_TTL (64)

/* peers: IPv4 of every node with an instance in the table -> its counters */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024); /* knob */
	__type(key, __be32);
	__type(value, struct px_peer);
} peers SEC(".maps");

/* remotes, remotes6: instance IP of an instance on another node -> the
 * IPv4 of its node (a new flow from the tunnel must come from there) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* knob */
	__type(key, __be32);
	__type(value, __be32);
} remotes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* knob */
	__type(key, struct in6_addr);
	__type(value, __be32);
} remotes6 SEC(".maps");

/* locals, locals6: namespace IP of a local instance -> where to deliver */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* knob */
	__type(key, __be32);
	__type(value, struct px_backend);
} locals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* knob */
	__type(key, struct in6_addr);
	__type(value, struct px_backend6);
} locals6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024); /* knob */
	__type(key, __be32);
	__type(value, struct px_nexthop);
} nexthops SEC(".maps");

/* tunnel_route results */
#define PX_ROUTE_OK (0)
#define PX_ROUTE_NO_NEIGH (1) /* the neighbour is not resolved yet: bpf_redirect_neigh resolves it */

/* nexthop_lookup asks the FIB for the way to node through the underlay (the
 * node's own output route): first for its MTU (a lookup of a packet larger
 * than any reports the route's), then for the next hop's MACs. */
static __always_inline int nexthop_lookup(struct __sk_buff *skb, const struct px_config *cfg, __be32 node,
					  struct px_nexthop *nh)
{
	struct bpf_fib_lookup fib = {.family = AF_INET, .l4_protocol = IPPROTO_UDP, .ipv4_src = cfg->node_ip,
				     .ipv4_dst = node, .ifindex = cfg->ul_ifindex, .tot_len = 0xffff};
	if (bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT) != BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return -PX_TUN_NOROUTE;
	nh->mtu = fib.mtu_result;
	__builtin_memset(&fib, 0, sizeof(fib));
	fib.family = AF_INET;
	fib.l4_protocol = IPPROTO_UDP;
	fib.ipv4_src = cfg->node_ip;
	fib.ipv4_dst = node;
	fib.ifindex = cfg->ul_ifindex;
	long r = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
	nh->ifindex = fib.ifindex;
	if (r == BPF_FIB_LKUP_RET_NO_NEIGH)
		return PX_ROUTE_NO_NEIGH;
	if (r != BPF_FIB_LKUP_RET_SUCCESS)
		return -PX_TUN_NOROUTE;
	__builtin_memcpy(nh->dmac, fib.dmac, ETH_ALEN);
	__builtin_memcpy(nh->smac, fib.smac, ETH_ALEN);
	bpf_map_update_elem(&nexthops, &node, nh, BPF_ANY); /* best effort: the next packet asks again */
	return PX_ROUTE_OK;
}

/* tunnel_route finds the way to node before anything is changed: the
 * cached next hop, or the FIB's. A packet that is not GSO must fit the
 * route's MTU once encapsulated; GSO TCP packets are segmented to fit
 * (bpf_skb_adjust_room lowers their gso_size by the overhead), GSO UDP ones
 * (UDP_SEGMENT) it cannot encapsulate. It returns PX_ROUTE_OK or
 * PX_ROUTE_NO_NEIGH, or the negated stats index of why the packet cannot
 * go. */
static __always_inline int tunnel_route(struct __sk_buff *skb, const struct px_config *cfg, __be32 node, __u8 l4,
					struct px_nexthop *nh)
{
	if (skb->gso_size && l4 != IPPROTO_TCP)
		return -PX_TUN_TOOBIG;
	int r = PX_ROUTE_OK;
	struct px_nexthop *c = bpf_map_lookup_elem(&nexthops, &node);
	if (c)
		*nh = *c;
	else if ((r = nexthop_lookup(skb, cfg, node, nh)) < 0)
		return r;
	if (!skb->gso_size && skb->len - sizeof(struct ethhdr) + NM_UDP4_OVERHEAD > nh->mtu)
		return -PX_TUN_TOOBIG;
	return r;
}

static __always_inline void peer_count_tx(__be32 node, __u64 bytes)
{
	struct px_peer *p = bpf_map_lookup_elem(&peers, &node);
	if (p) {
		p->tx_packets++;
		p->tx_bytes += bytes;
	}
}

/* tunnel_send encapsulates the (translated) packet to node:port and sends
 * it to the next hop tunnel_route found (fr: its result). */
static __always_inline int tunnel_send(struct __sk_buff *skb, const struct px_config *cfg, __be32 node, __be16 port,
				       const struct px_nexthop *nh, int fr)
{
	__u32 inner_len = skb->len - sizeof(struct ethhdr);
	__be32 self = cfg->node_ip;
	__be16 sport = cfg->tunnel_port;
	if (bpf_skb_adjust_room(skb, NM_UDP4_OVERHEAD, BPF_ADJ_ROOM_MAC, NM_ENCAP_UDP4_FLAGS)) {
		count(PX_ERROR);
		return nm_drop(skb, PX_REASON_ENCAP, 0);
	}
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end) {
		count(PX_ERROR);
		return nm_drop(skb, PX_REASON_ENCAP, 0);
	}
	eth->h_proto = bpf_htons(ETH_P_IP); /* the inner packet may be IPv6 */
	udp4_tunnel_fill(ip, udp, outer4_csum_base_proto(self, node, PX_TUNNEL_TTL, IPPROTO_UDP), self, node, sport,
			 port, PX_TUNNEL_TTL, inner_len);
	peer_count_tx(node, skb->len);
	if (fr == PX_ROUTE_NO_NEIGH)
		return bpf_redirect_neigh(nh->ifindex, NULL, 0, 0); /* the kernel resolves the neighbour */
	__builtin_memcpy(eth->h_dest, nh->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, nh->smac, ETH_ALEN);
	return bpf_redirect(nh->ifindex, 0);
}

/* A tunnel datagram's outer end, for the inner family's decapsulation. */
struct tunnel_from {
	__be32 node;          /* outer source: the sending node */
	__be16 port;          /* its tunnel port: where replies go */
	struct px_peer *peer; /* its counters (this CPU's) */
};

/* tunnel_deliver removes the outer headers of a checked tunnel datagram
 * and sends the inner packet (rewritten already) into the namespace behind
 * the host veth ifindex, to mac. */
static __always_inline int tunnel_deliver(struct __sk_buff *skb, const struct px_config *cfg, const struct tunnel_from *tf,
					  __u32 ifindex, const __u8 *mac, int inner_v6)
{
	__u32 dst[2], src[2]; /* word-aligned for set_macs */
	__builtin_memcpy(dst, mac, 6);
	__builtin_memcpy(src, cfg->gw_mac, 6);
	__u64 bytes = skb->len;
	if (nm_decap4(skb, NM_UDP4_OVERHEAD, inner_v6)) {
		count(PX_ERROR);
		return nm_drop(skb, PX_REASON_DECAP, 0);
	}
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end) {
		count(PX_ERROR);
		return nm_drop(skb, PX_REASON_DECAP, 0);
	}
	eth->h_proto = bpf_htons(inner_v6 ? ETH_P_IPV6 : ETH_P_IP);
	set_macs(eth, (__u8 *)dst, (__u8 *)src);
	tf->peer->rx_packets++;
	tf->peer->rx_bytes += bytes;
	return bpf_redirect_peer(ifindex, 0);
}
