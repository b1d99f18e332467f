/* Packet parsing for TC data planes with a cursor over [data, data_end).
 *
 * Each parse_* reads one header at the cursor, bounds-checks it against
 * data_end (so the verifier accepts the access), stores a pointer to it, moves
 * the cursor past it and returns the next protocol: an ethertype in host byte
 * order after L2, an IP protocol number after L3, 0 after L4. A truncated or
 * malformed header returns -1 and leaves the cursor where it was. */
#pragma once

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmpv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef ETH_P_8021Q
#define ETH_P_8021Q (0x8100)
#endif
#ifndef ETH_P_8021AD
#define ETH_P_8021AD (0x88A8)
#endif

/* Returned for an IPv4 or IPv6 fragment other than the first: it carries no
 * L4 header, so callers must not parse one. */
#define NM_PROTO_FRAGMENT (IPPROTO_FRAGMENT)

#define NM_MAX_VLAN_TAGS (2)
#define NM_MAX_IPV6_EXT (6)

/* ICMPv4 header. linux/icmp.h is not used: it pulls in glibc headers. */
struct nm_icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest; /* echo id and sequence, gateway, MTU ... */
};

#ifndef ICMP_ECHOREPLY
#define ICMP_ECHOREPLY (0)
#define ICMP_DEST_UNREACH (3)
#define ICMP_ECHO (8)
#define ICMP_TIME_EXCEEDED (11)
#endif

struct cursor {
	void *pos;
	void *end;
};

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* An IPv6 extension header's common prefix (hop-by-hop, routing, destination options). */
struct ipv6_ext {
	__u8 nexthdr;
	__u8 hdrlen; /* in 8-octet units, not counting the first 8 */
};

struct ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset << 3 | flags */
	__be32 id;
};

static __always_inline void cursor_init(struct cursor *c, struct __sk_buff *skb)
{
	c->pos = (void *)(long)skb->data;
	c->end = (void *)(long)skb->data_end;
}

/* cursor_take returns a pointer to the next len bytes and advances, or NULL. */
#define cursor_take(c, len)                                                    \
	({                                                                     \
		void *_p = (c)->pos;                                           \
		if (_p + (len) > (c)->end)                                     \
			_p = NULL;                                             \
		else                                                           \
			(c)->pos = _p + (len);                                 \
		_p;                                                            \
	})

/* parse_eth reads the Ethernet header and up to NM_MAX_VLAN_TAGS 802.1Q/802.1ad
 * tags; it returns the inner ethertype. */
static __always_inline int parse_eth(struct cursor *c, struct ethhdr **eth)
{
	void *start = c->pos;
	struct ethhdr *e = cursor_take(c, sizeof(*e));
	if (!e)
		return -1;
	__u16 proto = bpf_ntohs(e->h_proto);
#pragma unroll
	for (int i = 0; i < NM_MAX_VLAN_TAGS; i++) {
		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		struct vlan_hdr *v = cursor_take(c, sizeof(*v));
		if (!v) {
			c->pos = start;
			return -1;
		}
		proto = bpf_ntohs(v->proto);
	}
	*eth = e;
	return proto;
}

/* parse_ipv4 reads an IPv4 header including its options; it returns the L4
 * protocol, or NM_PROTO_FRAGMENT for a non-first fragment. */
static __always_inline int parse_ipv4(struct cursor *c, struct iphdr **ip)
{
	struct iphdr *h = c->pos;
	if ((void *)(h + 1) > c->end)
		return -1;
	if (h->version != 4 || h->ihl < 5)
		return -1;
	__u32 len = h->ihl * 4;
	if (c->pos + len > c->end)
		return -1;
	if (bpf_ntohs(h->tot_len) < len)
		return -1;
	c->pos += len;
	*ip = h;
	if (h->frag_off & bpf_htons(0x1fff))
		return NM_PROTO_FRAGMENT;
	return h->protocol;
}

/* parse_ipv6 reads the fixed IPv6 header and skips up to NM_MAX_IPV6_EXT
 * extension headers; it returns the L4 protocol, or NM_PROTO_FRAGMENT for a
 * non-first fragment. */
static __always_inline int parse_ipv6(struct cursor *c, struct ipv6hdr **ip6)
{
	void *start = c->pos;
	struct ipv6hdr *h = cursor_take(c, sizeof(*h));
	if (!h)
		return -1;
	if (h->version != 6) {
		c->pos = start;
		return -1;
	}
	__u8 next = h->nexthdr;
#pragma unroll
	for (int i = 0; i < NM_MAX_IPV6_EXT; i++) {
		if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS) {
			struct ipv6_ext *x = c->pos;
			if ((void *)(x + 1) > c->end)
				goto bad;
			__u32 len = (x->hdrlen + 1) * 8;
			if (c->pos + len > c->end)
				goto bad;
			next = x->nexthdr;
			c->pos += len;
		} else if (next == IPPROTO_FRAGMENT) {
			struct ipv6_frag *f = cursor_take(c, sizeof(*f));
			if (!f)
				goto bad;
			*ip6 = h;
			if (f->frag_off & bpf_htons(0xfff8))
				return NM_PROTO_FRAGMENT;
			next = f->nexthdr;
		} else {
			break;
		}
	}
	*ip6 = h;
	return next;
bad:
	c->pos = start;
	return -1;
}

/* parse_tcp reads a TCP header including its options. */
static __always_inline int parse_tcp(struct cursor *c, struct tcphdr **tcp)
{
	struct tcphdr *h = c->pos;
	if ((void *)(h + 1) > c->end)
		return -1;
	__u32 len = h->doff * 4;
	if (len < sizeof(*h) || c->pos + len > c->end)
		return -1;
	c->pos += len;
	*tcp = h;
	return 0;
}

static __always_inline int parse_udp(struct cursor *c, struct udphdr **udp)
{
	struct udphdr *h = cursor_take(c, sizeof(*h));
	if (!h)
		return -1;
	*udp = h;
	return 0;
}

static __always_inline int parse_icmp(struct cursor *c, struct nm_icmphdr **icmp)
{
	struct nm_icmphdr *h = cursor_take(c, sizeof(*h));
	if (!h)
		return -1;
	*icmp = h;
	return 0;
}

static __always_inline int parse_icmp6(struct cursor *c, struct icmp6hdr **icmp6)
{
	struct icmp6hdr *h = cursor_take(c, sizeof(*h));
	if (!h)
		return -1;
	*icmp6 = h;
	return 0;
}
