/* Encapsulation helpers for TC data planes: GRE over IPv4 (RFC 2784, no
 * optional fields) and the NetManager's inter-node tunnel (the inner IP
 * packet as the payload of an IPv4 UDP datagram, as the user-space tunnel
 * sends it), the bpf_skb_adjust_room flags for them, and the outer header's
 * checksum.
 *
 * Encapsulation inserts room after the Ethernet header with
 * NM_ENCAP_GRE4_FLAGS, so GSO packets are later segmented as GRE packets; the
 * program then writes the outer IPv4 and GRE headers itself. Decapsulation
 * removes them with a negative length and NM_DECAP_FLAGS(inner family)
 * (nm_decap4, which falls back for kernels before 6.3). */
#pragma once

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>

#include "csum.h"

/* The 6.1 uapi headers installed here predate the decap flags (Linux 6.3). */
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)
#endif


#define NM_IP_DF (0x4000)

/* The base GRE header: no checksum, key or sequence number, version 0. */
struct nm_grehdr {
	__be16 flags; /* C, K, S bits and version: all zero here */
	__be16 proto; /* ethertype of the payload */
};

#define NM_GRE4_OVERHEAD (sizeof(struct iphdr) + sizeof(struct nm_grehdr))

/* Room for an outer IPv4 + GRE header, marked as a GRE tunnel for GSO. The
 * kernel lowers gso_size by the added length so segments still fit. */
#define NM_ENCAP_GRE4_FLAGS (BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_GRE)

/* Removing an outer header: keep gso_size (the inner TCP's MSS) and say
 * which IP version the packet carries from now on. */
#define NM_DECAP_FLAGS(inner_v6)                                               \
	(BPF_F_ADJ_ROOM_FIXED_GSO |                                            \
	 ((inner_v6) ? BPF_F_ADJ_ROOM_DECAP_L3_IPV6 : BPF_F_ADJ_ROOM_DECAP_L3_IPV4))

/* nm_decap4 removes len bytes of outer IPv4 headers after the Ethernet
 * header. Kernels before 6.3 know no DECAP_L3 flags and refuse the call
 * (-EINVAL) without touching the packet; the flags only matter when the IP
 * version changes, so an inner IPv4 packet is decapsulated without them
 * there. An inner IPv6 packet cannot be (skb->protocol would stay IPv4): the
 * error is the caller's to count. */
static __always_inline long nm_decap4(struct __sk_buff *skb, __u32 len, int inner_v6)
{
	long err = bpf_skb_adjust_room(skb, -(__s32)len, BPF_ADJ_ROOM_MAC, NM_DECAP_FLAGS(inner_v6));
	if (err == -22 /* EINVAL */ && !inner_v6)
		err = bpf_skb_adjust_room(skb, -(__s32)len, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO);
	return err;
}

/* The inter-node tunnel: outer IPv4 + UDP, no UDP checksum (0, allowed
 * over IPv4, RFC 768; the inner packet carries its own), marked as a UDP
 * tunnel for GSO. */
#define NM_UDP4_OVERHEAD (sizeof(struct iphdr) + sizeof(struct udphdr))
#define NM_ENCAP_UDP4_FLAGS (BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP)

/* outer4_csum_base_proto sums the outer IPv4 header's 16-bit words that do
 * not change from packet to packet (all but the version/ToS word and
 * tot_len; the id is 0 because DF is set, RFC 6864): what a control plane
 * can precompute once per tunnel. Values in network byte order, as in the
 * header. */
static __always_inline __u32 outer4_csum_base_proto(__be32 saddr, __be32 daddr, __u8 ttl, __u8 proto)
{
	__u32 sum = bpf_htons(NM_IP_DF);
	sum += bpf_htons(((__u16)ttl << 8) | proto);
	sum += (saddr & 0xffff) + (saddr >> 16);
	sum += (daddr & 0xffff) + (daddr >> 16);
	return sum;
}

/* outer4_csum_base is outer4_csum_base_proto for a GRE tunnel. */
static __always_inline __u32 outer4_csum_base(__be32 saddr, __be32 daddr, __u8 ttl)
{
	return outer4_csum_base_proto(saddr, daddr, ttl, IPPROTO_GRE);
}

/* outer4_fill_proto writes an outer IPv4 header of tot bytes in all
 * carrying proto, its checksum completed from base (outer4_csum_base_proto
 * of the same addresses, TTL and protocol). */
static __always_inline void outer4_fill_proto(struct iphdr *ip, __u32 base, __be32 saddr, __be32 daddr, __u8 ttl,
					       __u8 tos, __u32 tot_len, __u8 proto)
{
	__be16 tot = bpf_htons(tot_len);
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = tos;
	ip->tot_len = tot;
	ip->id = 0;
	ip->frag_off = bpf_htons(NM_IP_DF);
	ip->ttl = ttl;
	ip->protocol = proto;
	ip->saddr = saddr;
	ip->daddr = daddr;
	__u32 sum = base + tot + bpf_htons((__u16)(0x4500 | tos));
	ip->check = csum_fold(sum);
}

/* outer4_fill writes an outer IPv4 header for a GRE payload of inner_len
 * bytes (the inner L3 packet). */
static __always_inline void outer4_fill(struct iphdr *ip, __u32 base, __be32 saddr, __be32 daddr, __u8 ttl,
					 __u8 tos, __u32 inner_len)
{
	outer4_fill_proto(ip, base, saddr, daddr, ttl, tos, inner_len + NM_GRE4_OVERHEAD, IPPROTO_GRE);
}

/* udp4_tunnel_fill writes the outer IPv4 and UDP headers of the inter-node
 * tunnel in front of an inner L3 packet of inner_len bytes: from
 * saddr:sport to daddr:dport (network byte order), base from
 * outer4_csum_base_proto(saddr, daddr, ttl, IPPROTO_UDP). */
static __always_inline void udp4_tunnel_fill(struct iphdr *ip, struct udphdr *udp, __u32 base, __be32 saddr,
					      __be32 daddr, __be16 sport, __be16 dport, __u8 ttl, __u32 inner_len)
{
	outer4_fill_proto(ip, base, saddr, daddr, ttl, 0, inner_len + NM_UDP4_OVERHEAD, IPPROTO_UDP);
	udp->source = sport;
	udp->dest = dport;
	udp->len = bpf_htons(inner_len + sizeof(struct udphdr));
	udp->check = 0;
}

/* udp4_tunnel_inner looks at a frame as an inter-node tunnel datagram to
 * dport (network byte order): an outer IPv4 header without options or
 * fragments, UDP, and an inner IP packet. It returns 1 for an inner IPv6
 * packet, 0 for IPv4, and -1 for anything else — other traffic, or the
 * user-space tunnel's RTT probes, whose first payload byte is 0 and which
 * stay for user space. */
static __always_inline int udp4_tunnel_inner(struct __sk_buff *skb, __be16 dport)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u8 *inner = (void *)(udp + 1);
	if ((void *)(inner + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	if (ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_UDP || (ip->frag_off & bpf_htons(0x3fff)))
		return -1;
	if (udp->dest != dport)
		return -1;
	switch (*inner >> 4) {
	case 4:
		return 0;
	case 6:
		return 1;
	}
	return -1;
}
