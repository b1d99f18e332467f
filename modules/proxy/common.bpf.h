/* proxy: what the IPv4 and IPv6 paths share — the config and stats maps,
 * checksum arithmetic, and reading a flow's ports and checksum field. */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "parse.h"
#include "verdicts.h"
#include "proxy.h"

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

/* parse_l4 results */
#define PX_L4_OK (0)
#define PX_L4_MALFORMED (-1) /* counted as malformed, passed untouched */
#define PX_L4_PASS (-2)      /* not translatable here: left to the user-space proxy */

/* A flow's ports and its L4 checksum field (csum_off 0: none to fix). */
struct l4info {
	__be16 sport;
	__be16 dport;
	__u32 csum_off;   /* from the start of the frame */
	__u64 csum_flags; /* for bpf_l4_csum_replace */
};

/* parse_l4 reads the ports of a TCP or UDP flow, or the identifier of an ICMP
 * (v6: ICMPv6) echo, and where its checksum is. ICMPv4's checksum does not
 * cover the addresses; the others' does (pseudo-header). UDP over IPv6 must
 * carry a checksum. */
static __always_inline int parse_l4(struct cursor *c, void *data, int l4, int v6, struct l4info *o)
{
	__u32 l4off = c->pos - data;
	if (l4 == IPPROTO_TCP) {
		struct tcphdr *t;
		if (parse_tcp(c, &t) < 0)
			return PX_L4_MALFORMED;
		o->sport = t->source;
		o->dport = t->dest;
		o->csum_off = l4off + __builtin_offsetof(struct tcphdr, check);
		o->csum_flags = BPF_F_PSEUDO_HDR;
		return PX_L4_OK;
	}
	if (l4 == IPPROTO_UDP) {
		struct udphdr *u;
		if (parse_udp(c, &u) < 0)
			return PX_L4_MALFORMED;
		o->sport = u->source;
		o->dport = u->dest;
		if (u->check) {
			o->csum_off = l4off + __builtin_offsetof(struct udphdr, check);
			o->csum_flags = BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0;
		} else if (v6) {
			return PX_L4_MALFORMED;
		}
		return PX_L4_OK;
	}
	if (l4 == IPPROTO_ICMP && !v6) {
		struct nm_icmphdr *i;
		if (parse_icmp(c, &i) < 0)
			return PX_L4_MALFORMED;
		if (i->type != ICMP_ECHO && i->type != ICMP_ECHOREPLY)
			return PX_L4_PASS;
		o->sport = o->dport = (__u16)i->rest;
		return PX_L4_OK;
	}
	if (l4 == IPPROTO_ICMPV6 && v6) {
		struct icmp6hdr *i;
		if (parse_icmp6(c, &i) < 0)
			return PX_L4_MALFORMED;
		if (i->icmp6_type != ICMPV6_ECHO_REQUEST && i->icmp6_type != ICMPV6_ECHO_REPLY)
			return PX_L4_PASS;
		o->sport = o->dport = i->icmp6_identifier;
		o->csum_off = l4off + __builtin_offsetof(struct icmp6hdr, icmp6_cksum);
		o->csum_flags = BPF_F_PSEUDO_HDR;
		return PX_L4_OK;
	}
	return PX_L4_PASS;
}

/* l4_csum applies an address rewrite's checksum difference to the L4
 * checksum; the helper knows CHECKSUM_PARTIAL (the field then holds the
 * pseudo-header sum). IPv6 asks it to leave skb->csum alone (the addresses'
 * change and the field's cancel out there); a kernel without BPF_F_IPV6
 * refuses the flag, and gets the call without it. */
static __always_inline int l4_csum(struct __sk_buff *skb, struct l4info *li, __u32 diff, int v6)
{
	if (!li->csum_off)
		return 0;
	long r = bpf_l4_csum_replace(skb, li->csum_off, 0, diff, li->csum_flags | (v6 ? BPF_F_IPV6 : 0));
	if (r == -PX_EINVAL && v6)
		r = bpf_l4_csum_replace(skb, li->csum_off, 0, diff, li->csum_flags);
	return r ? -1 : 0;
}
