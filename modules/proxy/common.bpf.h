/* proxy: what the IPv4 and IPv6 paths share — the config and stats maps,
 * checksum arithmetic, and reading a flow's ports and checksum field. */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "parse.h"
#include "verdicts.h"
#include "proxy.h"
#include "csum.h"

/* bpf_l4_csum_replace: the L3 addresses are not in skb->csum (IPv6, Linux
 * 6.16+; missing from the installed uapi headers). */
#ifndef BPF_F_IPV6
#define BPF_F_IPV6 (1ULL << 7)
#endif

#define PX_EINVAL (22)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct px_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PX_NSTATS);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void count(__u32 what)
{
	__u64 *n = bpf_map_lookup_elem(&stats, &what);
	if (n)
		(*n)++;
}

/* csum_add32 adds in 32-bit one's complement. */
static __always_inline __u32 csum_add32(__u32 a, __u32 b)
{
	__u32 r = a + b;
	return r + (r < a);
}

/* csum_diff16 adds the change of a 16-byte field (an IPv6 address) to sum. */
static __always_inline __u32 csum_diff16(__u32 sum, const __be32 *from, const __be32 *to)
{
#pragma unroll
	for (int i = 0; i < 4; i++)
		sum = csum_add32(csum_add32(sum, ~from[i]), to[i]);
	return sum;
}

/* set_macs addresses a frame from the bridge to a MAC inside the target
 * namespace (word copies: both MACs are 4-byte aligned in the map values). */
static __always_inline void set_macs(struct ethhdr *eth, const __u8 *dst, const __u8 *src)
{
	*(__u32 *)eth->h_dest = *(const __u32 *)dst;
	*(__u16 *)(eth->h_dest + 4) = *(const __u16 *)(dst + 4);
	*(__u32 *)eth->h_source = *(const __u32 *)src;
	*(__u16 *)(eth->h_source + 4) = *(const __u16 *)(src + 4);
}

/* parse_l4 results */
#define PX_L4_OK (0)
#define PX_L4_MALFORMED (-1) /* counted as malformed, passed untouched */
#define PX_L4_PASS (-2)      /* not translatable here: left to the user-space proxy */

/* A flow's ports and its L4 checksum field (none: ck NULL). */
struct l4info {
	__be16 sport;
	__be16 dport;
	__u32 csum_off;   /* of the checksum field, from the start of the frame */
	__u16 *ck;        /* the checksum field */
	__u64 csum_flags; /* BPF_F_PSEUDO_HDR, BPF_F_MARK_MANGLED_0 (UDP) */
};

/* parse_l4 reads the ports of a TCP or UDP flow, or the identifier of an ICMP
 * (v6: ICMPv6) echo, and where its checksum is. ICMPv4's checksum does not
 * cover the addresses; the others' does (pseudo-header). UDP over IPv6 must
 * carry a checksum. */
static __always_inline int parse_l4(struct cursor *c, void *data, int l4, int v6, struct l4info *o)
{
	if (l4 == IPPROTO_TCP) {
		struct tcphdr *t;
		if (parse_tcp(c, &t) < 0)
			return PX_L4_MALFORMED;
		o->sport = t->source;
		o->dport = t->dest;
		o->ck = (__u16 *)&t->check;
		o->csum_flags = BPF_F_PSEUDO_HDR;
	} else if (l4 == IPPROTO_UDP) {
		struct udphdr *u;
		if (parse_udp(c, &u) < 0)
			return PX_L4_MALFORMED;
		o->sport = u->source;
		o->dport = u->dest;
		if (u->check) {
			o->ck = (__u16 *)&u->check;
			o->csum_flags = BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0;
		} else if (v6) {
			return PX_L4_MALFORMED;
		}
	} else if (l4 == IPPROTO_ICMP && !v6) {
		struct nm_icmphdr *i;
		if (parse_icmp(c, &i) < 0)
			return PX_L4_MALFORMED;
		if (i->type != ICMP_ECHO && i->type != ICMP_ECHOREPLY)
			return PX_L4_PASS;
		o->sport = o->dport = (__u16)i->rest;
	} else if (l4 == IPPROTO_ICMPV6 && v6) {
		struct icmp6hdr *i;
		if (parse_icmp6(c, &i) < 0)
			return PX_L4_MALFORMED;
		if (i->icmp6_type != ICMPV6_ECHO_REQUEST && i->icmp6_type != ICMPV6_ECHO_REPLY)
			return PX_L4_PASS;
		o->sport = o->dport = i->icmp6_identifier;
		o->ck = (__u16 *)&i->icmp6_cksum;
		o->csum_flags = BPF_F_PSEUDO_HDR;
	} else {
		return PX_L4_PASS;
	}
	if (o->ck)
		o->csum_off = (void *)o->ck - data;
	return PX_L4_OK;
}

/* The kernel's skb, for its ip_summed (CO-RE: the layout is the running
 * kernel's). bpf_cast_to_kern_ctx (Linux 6.2+) costs nothing: the verifier
 * turns it into a move. It is weak: where the kernel lacks it, the loader
 * zeroes its address and the checksums go through bpf_l4_csum_replace. (A test
 * builds the object with PX_KERN_CTX naming a kfunc no kernel has.) */
struct sk_buff___px {
	__u8 ip_summed : 2;
} __attribute__((preserve_access_index));

#ifndef PX_KERN_CTX
#define PX_KERN_CTX bpf_cast_to_kern_ctx
#endif
extern void *PX_KERN_CTX(void *obj) __ksym __weak;

#define PX_CHECKSUM_COMPLETE (2)
#define PX_CHECKSUM_PARTIAL (3)

/* csum_update is an L4 checksum field updated by a pseudo-header change of
 * diff, as the kernel does it (inet_proto_csum_replace_by_diff and
 * bpf_l4_csum_replace's BPF_F_MARK_MANGLED_0): a CHECKSUM_PARTIAL field holds
 * the uncomplemented pseudo-header sum, any other the checksum. With mmzero
 * (UDP) a 0 field means "no checksum" and stays, and a result of 0 is sent as
 * 0xffff. */
static __always_inline __u16 csum_update(__u16 old, __u32 diff, int partial, int mmzero)
{
	if (mmzero && !old)
		return 0;
	__u16 sum = partial ? (__u16)~csum_fold(csum_add32(diff, (__u32)old)) : csum_fold(csum_add32(diff, ~(__u32)old));
	return mmzero && !sum ? 0xffff : sum;
}

/* l4_csum applies an address rewrite's checksum difference to the L4
 * checksum. In place, with the kernel's arithmetic for the skb's ip_summed
 * (no helper call: on this path that is a third of the packet's cost) —
 * except for CHECKSUM_COMPLETE, where skb->csum changes too, and where
 * ip_summed cannot be read: that is bpf_l4_csum_replace's (for IPv6 with
 * BPF_F_IPV6, which leaves skb->csum alone as the addresses' change and the
 * field's cancel out; a kernel without the flag refuses it and gets the call
 * without). */
static __always_inline int l4_csum(struct __sk_buff *skb, struct l4info *li, __u32 diff, int v6)
{
	if (!li->ck)
		return 0;
	__u32 summed = PX_CHECKSUM_COMPLETE;
	if (PX_KERN_CTX) {
		struct sk_buff___px *k = PX_KERN_CTX(skb);
		summed = BPF_CORE_READ_BITFIELD(k, ip_summed);
	}
	if (summed != PX_CHECKSUM_COMPLETE) {
		*li->ck = csum_update(*li->ck, diff, summed == PX_CHECKSUM_PARTIAL, li->csum_flags & BPF_F_MARK_MANGLED_0);
		return 0;
	}
	long r = bpf_l4_csum_replace(skb, li->csum_off, 0, diff, li->csum_flags | (v6 ? BPF_F_IPV6 : 0));
	if (r == -PX_EINVAL && v6)
		r = bpf_l4_csum_replace(skb, li->csum_off, 0, diff, li->csum_flags);
	return r ? -1 : 0;
}
