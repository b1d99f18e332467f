/* proxy: the IPv6 path — the IPv4 path's tables with 16-byte addresses.
 * There is no header checksum; the L4 checksum difference of a session is
 * computed once, when the session is made. Packets with extension headers
 * are passed on untouched. */
#pragma once

#include "common.bpf.h"
#include "icmperr.bpf.h"
#include "miss.bpf.h"
#include "tunnel.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* knob */
	__type(key, struct in6_addr);
	__type(value, struct px_service);
} services6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* knob */
	__type(key, struct px_backend_key6);
	__type(value, struct px_backend6);
} backends6 SEC(".maps");

/* senders6: namespace IPv6 -> IPv6 instance IP of every local instance */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* knob */
	__type(key, struct in6_addr);
	__type(value, struct in6_addr);
} senders6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* knob */
	__type(key, struct in6_addr);
	__type(value, __u64);
} rr6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* knob */
	__type(key, struct px_flow6);
	__type(value, struct px_session6);
} sessions6 SEC(".maps");

struct target6 {
	struct px_session6 fwd;
	struct px_session6 rev;
	struct px_flow6 rev_key;
};

static __always_inline int in_range6(const __be32 *a, const struct px_config *cfg)
{
	return (a[0] & cfg->range6_mask[0]) == cfg->range6_addr[0] &&
	       (a[1] & cfg->range6_mask[1]) == cfg->range6_addr[1] &&
	       (a[2] & cfg->range6_mask[2]) == cfg->range6_addr[2] &&
	       (a[3] & cfg->range6_mask[3]) == cfg->range6_addr[3];
}

/* resolve6 picks a backend for a new flow and builds both sessions; 0 on success. */
static __always_inline int resolve6(struct px_flow6 *f, __u32 sender_ifindex, __u8 *sender_mac, struct target6 *t)
{
	struct px_service *svc = bpf_map_lookup_elem(&services6, f->dst);
	if (!svc || !svc->count)
		return -1;
	__be32 *inst = bpf_map_lookup_elem(&senders6, f->src);
	if (!inst)
		return -1;
	struct px_backend_key6 bk = {};
	__builtin_memcpy(bk.service_ip, f->dst, 16);
	if (svc->kind == 0) {
		__u64 *ctr = bpf_map_lookup_elem(&rr6, f->dst);
		if (!ctr)
			return -1;
		bk.index = __sync_fetch_and_add(ctr, 1) % svc->count;
	}
	struct px_backend6 *b = bpf_map_lookup_elem(&backends6, &bk);
	if (!b)
		return -1;
	__builtin_memcpy(t->fwd.new_src, inst, 16);
	__builtin_memcpy(t->fwd.new_dst, b->ns_ip, 16);
	t->fwd.ifindex = b->ifindex;
	__builtin_memcpy(t->fwd.mac, b->mac, 6);
	t->fwd.csum_diff = csum_diff16(csum_diff16(0, f->src, t->fwd.new_src), f->dst, t->fwd.new_dst);
	t->fwd.node_ip = b->node_ip; /* another node's instance: through the tunnel */
	t->fwd.node_port = b->node_port;
	t->rev.from_node = b->node_ip;
	__builtin_memcpy(t->rev.new_src, f->dst, 16);
	__builtin_memcpy(t->rev.new_dst, f->src, 16);
	t->rev.ifindex = sender_ifindex;
	__builtin_memcpy(t->rev.mac, sender_mac, 6);
	__builtin_memcpy(t->rev_key.src, b->ns_ip, 16);
	__builtin_memcpy(t->rev_key.dst, inst, 16);
	t->rev_key.sport = f->dport;
	t->rev_key.dport = f->sport;
	t->rev_key.proto = f->proto;
	t->rev.csum_diff = csum_diff16(csum_diff16(0, t->rev_key.src, t->rev.new_src), t->rev_key.dst, t->rev.new_dst);
	return 0;
}

/* tunnel_out6 translates a packet of a session with an instance on another
 * node and tunnels it there (in IPv4, as every tunnel datagram), by the
 * route tunnel_route found (fr). */
static __always_inline int tunnel_out6(struct __sk_buff *skb, struct ipv6hdr *ip6, struct px_session6 *s, struct l4info *li,
				       const struct px_config *cfg, const struct px_nexthop *nh, int fr)
{
	__be32 node = s->node_ip;
	__be16 port = s->node_port;
	__builtin_memcpy(ip6->saddr.in6_u.u6_addr32, s->new_src, 16);
	__builtin_memcpy(ip6->daddr.in6_u.u6_addr32, s->new_dst, 16);
	if (l4_csum(skb, li, s->csum_diff, 1) < 0) {
		count(PX_ERROR);
		return nm_drop(skb, PX_REASON_CHECKSUM, 0);
	}
	return tunnel_send(skb, cfg, node, port, nh, fr);
}

/* translate6 applies a session to the packet and redirects it into the
 * target namespace (no helper call on the way: the parsed pointers stay
 * valid). */
static __always_inline int translate6(struct __sk_buff *skb, struct ethhdr *eth, struct ipv6hdr *ip6, struct px_session6 *s, struct l4info *li,
				      const struct px_config *cfg)
{
	__builtin_memcpy(ip6->saddr.in6_u.u6_addr32, s->new_src, 16);
	__builtin_memcpy(ip6->daddr.in6_u.u6_addr32, s->new_dst, 16);
	set_macs(eth, s->mac, cfg->gw_mac);
	if (l4_csum(skb, li, s->csum_diff, 1) < 0) {
		count(PX_ERROR);
		return nm_drop(skb, PX_REASON_CHECKSUM, 0);
	}
	return bpf_redirect_peer(s->ifindex, 0);
}

/* new_flow6 makes the sessions of a flow that has none, both ways, and
 * translates its first packet — or passes it on and reports the miss. */
static __always_inline int new_flow6(struct __sk_buff *skb, struct ethhdr *eth, struct ipv6hdr *ip6, struct px_flow6 *f, struct l4info *li,
				     const struct px_config *cfg)
{
	struct target6 t = {};
	if (resolve6(f, skb->ifindex, eth->h_source, &t) < 0) {
		count(PX_PASS);
		report_miss(6, f->proto, f->dst, f->src);
		return NM_NEXT; /* the user-space proxy takes it from here */
	}
	struct px_nexthop nh;
	int fr = 0;
	if (t.fwd.node_ip && (fr = tunnel_route(skb, cfg, t.fwd.node_ip, f->proto, &nh)) < 0) {
		count(-fr);
		return NM_NEXT;
	}
	if (bpf_map_update_elem(&sessions6, &t.rev_key, &t.rev, BPF_ANY) ||
	    bpf_map_update_elem(&sessions6, f, &t.fwd, BPF_ANY)) {
		count(PX_ERROR);
		return nm_drop(skb, PX_REASON_SESSION, 0);
	}
	count(PX_NEW);
	if (t.fwd.node_ip)
		return tunnel_out6(skb, ip6, &t.fwd, li, cfg, &nh, fr);
	return translate6(skb, eth, ip6, &t.fwd, li, cfg);
}

/* px_icmp_error6 translates an ICMPv6 error (destination unreachable, packet
 * too big, time exceeded, parameter problem) about a flow with a session and
 * delivers it like a hit (icmperr.bpf.h); an error about no known flow, a
 * malformed or truncated one, one quoting extension headers, or other ICMPv6
 * it passes on untouched. Called by handle6 for ICMPv6 other than echo right
 * after the IPv6 header, only. */
__attribute__((noinline)) int px_icmp_error6(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct px_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return NM_NEXT;
	bpf_skb_pull_data(skb, skb->len < PX_ICMP_PULL ? skb->len : PX_ICMP_PULL); /* best effort: the checks below decide */
	struct cursor c;
	struct ethhdr *eth;
	cursor_init(&c, skb);
	void *data = c.pos;
	if (parse_eth(&c, &eth) != ETH_P_IPV6)
		goto malformed; /* handle6 parsed it before the pull: cannot be */
	struct ipv6hdr *ip6 = cursor_take(&c, sizeof(*ip6));
	struct icmp6hdr *icmp;
	if (!ip6 || ip6->version != 6 || ip6->nexthdr != IPPROTO_ICMPV6 || parse_icmp6(&c, &icmp) < 0)
		goto malformed; /* as above */
	if (icmp->icmp6_type < ICMPV6_DEST_UNREACH || icmp->icmp6_type > ICMPV6_PARAMPROB)
		goto pass;

	/* The message ends at the payload length (the frame may be padded) and
	 * must hold the quoted IPv6 header and 8 bytes of L4. */
	__u32 tot = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	__u32 ip_off = (void *)ip6 - data;
	if (ip_off + tot > skb->len || tot < sizeof(*ip6) + 8 + sizeof(*ip6) + 8)
		goto malformed;
	__u32 avail = tot - sizeof(*ip6) - 8; /* quoted bytes */
	struct ipv6hdr *q = c.pos;
	if ((void *)(q + 1) > c.end || q->version != 6)
		goto malformed;
	__u32 qtot = sizeof(*q) + bpf_ntohs(q->payload_len);
	if (qtot < sizeof(*q) + 8)
		goto malformed;
	if (qtot > avail)
		qtot = avail; /* the quote is cut short */
	struct quote qt = {};
	int r = parse_quote(q + 1, c.end, q->nexthdr, 1, qtot - sizeof(*q), &qt);
	if (r == PX_L4_MALFORMED)
		goto malformed;
	if (r != PX_L4_OK)
		goto pass; /* not TCP, UDP or echo (extension headers among them) */

	/* the direction the error travels in: the reverse of the quoted flow */
	struct px_flow6 f = {.sport = qt.dport, .dport = qt.sport, .proto = q->nexthdr};
	__builtin_memcpy(f.src, q->daddr.in6_u.u6_addr32, 16);
	__builtin_memcpy(f.dst, q->saddr.in6_u.u6_addr32, 16);
	struct px_session6 *s = bpf_map_lookup_elem(&sessions6, &f);
	if (!s) {
		count(PX_ICMP_NOFLOW);
		return NM_NEXT;
	}
	if (s->node_ip)
		goto pass; /* for the tunnel: not translated here */
	/* The outer addresses are in the ICMPv6 checksum's pseudo-header; the
	 * quoted ones change as the session's own flow's do, swapped: by the
	 * session's checksum difference, and with them the quoted L4 checksum.
	 * Both are bytes of the message. (Word by word: the stack is shared
	 * with the caller's.) */
	__be32 *src = ip6->saddr.in6_u.u6_addr32, *dst = ip6->daddr.in6_u.u6_addr32;
	int same = src[0] == f.src[0] && src[1] == f.src[1] && src[2] == f.src[2] && src[3] == f.src[3];
	__u32 pseudo = 0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (same) {
			pseudo = csum_add32(csum_add32(pseudo, ~src[i]), s->new_src[i]);
			src[i] = s->new_src[i];
		}
		pseudo = csum_add32(csum_add32(pseudo, ~dst[i]), s->new_dst[i]);
		dst[i] = s->new_dst[i];
		q->saddr.in6_u.u6_addr32[i] = s->new_dst[i];
		q->daddr.in6_u.u6_addr32[i] = s->new_src[i];
	}
	__u32 diff = s->csum_diff;
	__u32 msg = csum_add32(diff, quote_csum(&qt, diff));
	set_macs(eth, s->mac, cfg->gw_mac);
	__u32 ifindex = s->ifindex;
	if (icmp_csum(skb, (void *)&icmp->icmp6_cksum - data, msg, pseudo, 1) < 0) {
		count(PX_ERROR);
		return nm_drop(skb, PX_REASON_CHECKSUM, 0);
	}
	count(PX_ICMP_ERR);
	return bpf_redirect_peer(ifindex, 0);
malformed:
	count(PX_MALFORMED);
	return NM_NEXT;
pass:
	count(PX_PASS);
	return NM_NEXT;
}

/* handle6 translates an IPv6 packet leaving a service; the cursor is past
 * the Ethernet header. */
static __always_inline int handle6(struct __sk_buff *skb, struct cursor *c, void *data, struct ethhdr *eth,
				   const struct px_config *cfg)
{
	struct ipv6hdr *ip6;
	int l4 = parse_ipv6(c, &ip6);
	if (l4 < 0)
		return NM_NEXT;
	if (!in_range6(ip6->daddr.in6_u.u6_addr32, cfg))
		return NM_NEXT; /* not a service IP: nothing to translate */
	if (c->pos != (void *)(ip6 + 1)) {
		count(PX_V6_EXT);
		return NM_NEXT;
	}

	struct px_flow6 f = {.proto = l4};
	__builtin_memcpy(f.src, ip6->saddr.in6_u.u6_addr32, 16);
	__builtin_memcpy(f.dst, ip6->daddr.in6_u.u6_addr32, 16);
	struct l4info li = {};
	int r = parse_l4(c, data, l4, 1, &li);
	if (r != PX_L4_OK) {
		if (r == PX_L4_PASS && l4 == IPPROTO_ICMPV6)
			return px_icmp_error6(skb); /* ICMPv6 other than echo: perhaps an error about a flow */
		count(r == PX_L4_MALFORMED ? PX_MALFORMED : PX_PASS);
		return NM_NEXT;
	}
	f.sport = li.sport;
	f.dport = li.dport;

	struct px_session6 *s = bpf_map_lookup_elem(&sessions6, &f);
	if (!s)
		return new_flow6(skb, eth, ip6, &f, &li, cfg);
	if (s->from_node) {
		count(PX_PASS); /* the flow's packets come through the tunnel, not from a service here */
		return NM_NEXT;
	}
	if (s->node_ip) {
		struct px_nexthop nh;
		int fr = tunnel_route(skb, cfg, s->node_ip, l4, &nh);
		if (fr < 0) {
			count(-fr);
			return NM_NEXT;
		}
		count(PX_HIT);
		return tunnel_out6(skb, ip6, s, &li, cfg, &nh, fr);
	}
	count(PX_HIT);
	return translate6(skb, eth, ip6, s, &li, cfg);
}

static __always_inline int eq16(const __be32 *a, const __be32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

/* inbound6 is inbound4 for IPv6: 0, or the stats index of the refusal. */
static __always_inline int inbound6(struct px_flow6 *f, const struct tunnel_from *tf, struct target6 *t)
{
	__be32 *node = bpf_map_lookup_elem(&remotes6, f->src);
	if (!node || *node != tf->node)
		return PX_DECAP_NOT_PEER_INSTANCE;
	struct px_backend6 *l = bpf_map_lookup_elem(&locals6, f->dst);
	if (!l)
		return PX_DECAP_NOT_LOCAL;
	__builtin_memcpy(t->fwd.new_src, f->src, 16);
	__builtin_memcpy(t->fwd.new_dst, f->dst, 16);
	t->fwd.ifindex = l->ifindex;
	__builtin_memcpy(t->fwd.mac, l->mac, 6);
	t->fwd.from_node = tf->node;
	__builtin_memcpy(t->rev_key.src, f->dst, 16);
	__builtin_memcpy(t->rev_key.dst, f->src, 16);
	t->rev_key.sport = f->dport;
	t->rev_key.dport = f->sport;
	t->rev_key.proto = f->proto;
	__builtin_memcpy(t->rev.new_src, f->dst, 16);
	__builtin_memcpy(t->rev.new_dst, f->src, 16);
	t->rev.node_ip = tf->node;
	t->rev.node_port = tf->port;
	return 0;
}

/* decap6 is decap4 for an inner IPv6 packet (without extension headers). */
static __always_inline int decap6(struct __sk_buff *skb, const struct px_config *cfg, const struct tunnel_from *tf)
{
	struct cursor c;
	cursor_init(&c, skb);
	void *data = c.pos;
	struct ipv6hdr *ip6;
	struct l4info li = {};
	c.pos += sizeof(struct ethhdr) + NM_UDP4_OVERHEAD;
	int l4 = parse_ipv6(&c, &ip6);
	if (l4 < 0 || c.pos != (void *)(ip6 + 1) || parse_l4(&c, data, l4, 1, &li) != PX_L4_OK) {
		count(PX_DECAP_UNSUPPORTED);
		return NM_NEXT;
	}
	struct px_flow6 f = {.sport = li.sport, .dport = li.dport, .proto = l4};
	__builtin_memcpy(f.src, ip6->saddr.in6_u.u6_addr32, 16);
	__builtin_memcpy(f.dst, ip6->daddr.in6_u.u6_addr32, 16);
	struct px_session6 *s = bpf_map_lookup_elem(&sessions6, &f);
	struct target6 t = {};
	if (!s) {
		int r = inbound6(&f, tf, &t);
		if (r) {
			count(r);
			return NM_NEXT;
		}
		if (bpf_map_update_elem(&sessions6, &t.rev_key, &t.rev, BPF_ANY) ||
		    bpf_map_update_elem(&sessions6, &f, &t.fwd, BPF_ANY)) {
			count(PX_ERROR);
			return nm_drop(skb, PX_REASON_SESSION, 0);
		}
		count(PX_NEW);
		s = &t.fwd;
	} else if (s->from_node != tf->node) {
		count(PX_DECAP_WRONG_PEER);
		return NM_NEXT;
	} else {
		count(PX_HIT);
	}
	__u32 ifindex = s->ifindex;
	__u32 mac[2];
	__builtin_memcpy(mac, s->mac, 6);
	if (!eq16(s->new_src, f.src) || !eq16(s->new_dst, f.dst)) { /* a reply to a flow from here */
		__builtin_memcpy(ip6->saddr.in6_u.u6_addr32, s->new_src, 16);
		__builtin_memcpy(ip6->daddr.in6_u.u6_addr32, s->new_dst, 16);
		if (l4_csum(skb, &li, s->csum_diff, 1) < 0) {
			count(PX_ERROR);
			return nm_drop(skb, PX_REASON_CHECKSUM, 0);
		}
	}
	return tunnel_deliver(skb, cfg, tf, ifindex, (__u8 *)mac, 1);
}
