/* proxy: the IPv4 path — its maps, new sessions and the rewrite. */
#pragma once

#include "common.bpf.h"
#include "icmperr.bpf.h"
#include "miss.bpf.h"
#include "tunnel.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* knob */
	__type(key, __be32);
	__type(value, struct px_service);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* knob */
	__type(key, struct px_backend_key);
	__type(value, struct px_backend);
} backends SEC(".maps");

/* senders: namespace IP -> instance IP of every local instance */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* knob */
	__type(key, __be32);
	__type(value, __be32);
} senders SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* knob */
	__type(key, __be32);
	__type(value, __u64);
} rr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* knob */
	__type(key, struct px_flow);
	__type(value, struct px_session);
} sessions SEC(".maps");

struct target {
	struct px_session fwd;
	struct px_session rev;
	struct px_flow rev_key;
};

/* rewrite_diff is the checksum change of rewriting src, dst to nsrc, ndst. */
static __always_inline __u32 rewrite_diff(__be32 src, __be32 dst, __be32 nsrc, __be32 ndst)
{
	return csum_add32(csum_add32(~src, ~dst), csum_add32(nsrc, ndst));
}

/* resolve picks a backend for a new flow and builds both sessions; 0 on success. */
static __always_inline int resolve(struct px_flow *f, __u32 sender_ifindex, __u8 *sender_mac, struct target *t)
{
	struct px_service *svc = bpf_map_lookup_elem(&services, &f->dst);
	if (!svc || !svc->count)
		return -1;
	__be32 *inst = bpf_map_lookup_elem(&senders, &f->src);
	if (!inst)
		return -1;
	struct px_backend_key bk = {.service_ip = f->dst, .index = 0};
	if (svc->kind == 0) {
		__u64 *ctr = bpf_map_lookup_elem(&rr, &f->dst);
		if (!ctr)
			return -1;
		bk.index = __sync_fetch_and_add(ctr, 1) % svc->count;
	}
	struct px_backend *b = bpf_map_lookup_elem(&backends, &bk);
	if (!b)
		return -1;
	__u64 now = bpf_ktime_get_ns();
	t->fwd.new_src = *inst;
	t->fwd.new_dst = b->ns_ip;
	t->fwd.ifindex = b->ifindex;
	__builtin_memcpy(t->fwd.mac, b->mac, 6);
	t->fwd.csum_diff = rewrite_diff(f->src, f->dst, t->fwd.new_src, t->fwd.new_dst);
	t->fwd.last_seen = now;
	t->fwd.node_ip = b->node_ip; /* another node's instance: through the tunnel */
	t->fwd.node_port = b->node_port;
	t->rev.from_node = b->node_ip; /* and its replies come back through it */
	t->rev_key.src = b->ns_ip;
	t->rev_key.dst = *inst;
	t->rev_key.sport = f->dport;
	t->rev_key.dport = f->sport;
	t->rev_key.proto = f->proto;
	t->rev.new_src = f->dst;
	t->rev.new_dst = f->src;
	t->rev.ifindex = sender_ifindex;
	__builtin_memcpy(t->rev.mac, sender_mac, 6);
	t->rev.csum_diff = rewrite_diff(t->rev_key.src, t->rev_key.dst, t->rev.new_src, t->rev.new_dst);
	t->rev.last_seen = now;
	return 0;
}

/* tunnel_out4 translates a packet of a session with an instance on another
 * node and tunnels it there, by the route tunnel_route found (fr). */
static __always_inline int tunnel_out4(struct __sk_buff *skb, struct iphdr *ip, struct px_session *s, struct l4info *li,
				       const struct px_config *cfg, const struct px_nexthop *nh, int fr)
{
	__be32 node = s->node_ip;
	__be16 port = s->node_port;
	__u32 diff = s->csum_diff;
	ip->check = csum_fold(csum_add32(diff, ~(__u32)ip->check));
	ip->saddr = s->new_src;
	ip->daddr = s->new_dst;
	if (l4_csum(skb, li, diff, 0) < 0) {
		count(PX_ERROR);
		return nm_drop(skb, PX_REASON_CHECKSUM, 0);
	}
	return tunnel_send(skb, cfg, node, port, nh, fr);
}

/* translate applies a session to the packet and redirects it into the target
 * namespace. The session's checksum difference serves the IPv4 header
 * checksum (never offloaded: updated in place, RFC 1624) and the L4 one,
 * which covers the pseudo-header. No helper call on the way: the packet
 * pointers from parsing stay valid. */
static __always_inline int translate(struct __sk_buff *skb, struct ethhdr *eth, struct iphdr *ip, struct px_session *s, struct l4info *li,
				     const struct px_config *cfg)
{
	__u32 diff = s->csum_diff;
	ip->check = csum_fold(csum_add32(diff, ~(__u32)ip->check));
	ip->saddr = s->new_src;
	ip->daddr = s->new_dst;
	set_macs(eth, s->mac, cfg->gw_mac);
	if (l4_csum(skb, li, diff, 0) < 0) {
		count(PX_ERROR);
		return nm_drop(skb, PX_REASON_CHECKSUM, 0);
	}
	return bpf_redirect_peer(s->ifindex, 0);
}

/* new_flow makes the sessions of a flow that has none, both ways, and
 * translates its first packet — or passes it on and reports the miss. A
 * flow to another node's instance with no way there (tunnel_route) is
 * passed on without sessions. */
static __always_inline int new_flow(struct __sk_buff *skb, struct ethhdr *eth, struct iphdr *ip, struct px_flow *f, struct l4info *li,
				    const struct px_config *cfg)
{
	struct target t = {};
	if (resolve(f, skb->ifindex, eth->h_source, &t) < 0) {
		count(PX_PASS);
		report_miss(4, f->proto, &f->dst, &f->src);
		return NM_NEXT; /* the user-space proxy takes it from here */
	}
	struct px_nexthop nh;
	int fr = 0;
	if (t.fwd.node_ip && (fr = tunnel_route(skb, cfg, t.fwd.node_ip, f->proto, &nh)) < 0) {
		count(-fr);
		return NM_NEXT;
	}
	if (bpf_map_update_elem(&sessions, &t.rev_key, &t.rev, BPF_ANY) ||
	    bpf_map_update_elem(&sessions, f, &t.fwd, BPF_ANY)) {
		count(PX_ERROR);
		return nm_drop(skb, PX_REASON_SESSION, 0);
	}
	count(PX_NEW);
	if (t.fwd.node_ip)
		return tunnel_out4(skb, ip, &t.fwd, li, cfg, &nh, fr);
	return translate(skb, eth, ip, &t.fwd, li, cfg);
}

/* px_icmp_error4 translates an ICMP error (destination unreachable, time
 * exceeded, parameter problem) about a flow with a session and delivers it
 * like a hit (icmperr.bpf.h); an error about no known flow, a malformed or
 * truncated one, or other ICMP it passes on untouched. Called by handle4 for
 * ICMP other than echo, only. */
__attribute__((noinline)) int px_icmp_error4(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct px_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return NM_NEXT;
	bpf_skb_pull_data(skb, skb->len < PX_ICMP_PULL ? skb->len : PX_ICMP_PULL); /* best effort: the checks below decide */
	struct cursor c;
	struct ethhdr *eth;
	struct iphdr *ip;
	struct nm_icmphdr *icmp;
	cursor_init(&c, skb);
	void *data = c.pos;
	if (parse_eth(&c, &eth) != ETH_P_IP || parse_ipv4(&c, &ip) != IPPROTO_ICMP || parse_icmp(&c, &icmp) < 0)
		goto malformed; /* handle4 parsed it before the pull: cannot be */
	if (icmp->type != ICMP_DEST_UNREACH && icmp->type != ICMP_TIME_EXCEEDED && icmp->type != ICMP_PARAMETERPROB)
		goto pass;
	if (ip->frag_off & bpf_htons(0x2000))
		goto pass; /* a fragment of the error: not all of the message is here */

	/* The message ends at the IP total length (the frame may be padded) and
	 * must hold the quoted IP header and 8 bytes of L4. */
	__u32 hl = ip->ihl * 4;
	__u32 tot = bpf_ntohs(ip->tot_len);
	__u32 ip_off = (void *)ip - data;
	if (ip_off + tot > skb->len || tot < hl + 8 + sizeof(struct iphdr) + 8)
		goto malformed;
	__u32 avail = tot - hl - 8; /* quoted bytes */
	struct iphdr *q = c.pos;
	if ((void *)(q + 1) > c.end || q->version != 4 || q->ihl < 5)
		goto malformed;
	__u32 qhl = q->ihl * 4;
	__u32 qtot = bpf_ntohs(q->tot_len);
	if (qhl + 8 > avail || qtot < qhl + 8)
		goto malformed;
	if (qtot > avail)
		qtot = avail; /* the quote is cut short */
	if (q->frag_off & bpf_htons(0x1fff))
		goto pass; /* quotes a later fragment: no ports */
	struct quote qt = {};
	int r = parse_quote((void *)q + qhl, c.end, q->protocol, 0, qtot - qhl, &qt);
	if (r == PX_L4_MALFORMED)
		goto malformed;
	if (r != PX_L4_OK)
		goto pass;

	/* the direction the error travels in: the reverse of the quoted flow */
	struct px_flow f = {.src = q->daddr, .dst = q->saddr, .sport = qt.dport, .dport = qt.sport, .proto = q->protocol};
	struct px_session *s = bpf_map_lookup_elem(&sessions, &f);
	if (!s) {
		count(PX_ICMP_NOFLOW);
		return NM_NEXT;
	}
	if (s->node_ip)
		goto pass; /* for the tunnel: not translated here */
	__be32 nsrc = ip->saddr == q->daddr ? s->new_src : ip->saddr;
	__u32 diff = rewrite_diff(ip->saddr, ip->daddr, nsrc, s->new_dst);
	ip->check = csum_fold(csum_add32(diff, ~(__u32)ip->check));
	ip->saddr = nsrc;
	ip->daddr = s->new_dst;
	/* The quoted addresses change as the session's own flow's do, swapped:
	 * by the session's checksum difference. The quoted header's checksum
	 * takes it in, so only the quoted L4 checksum's change is left for the
	 * ICMP checksum, which does not cover the outer addresses. */
	diff = s->csum_diff;
	q->check = csum_fold(csum_add32(diff, ~(__u32)q->check));
	q->saddr = s->new_dst;
	q->daddr = s->new_src;
	__u32 msg = quote_csum(&qt, diff);
	set_macs(eth, s->mac, cfg->gw_mac);
	__u32 ifindex = s->ifindex;
	if (icmp_csum(skb, (void *)&icmp->checksum - data, msg, 0, 0) < 0) {
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

/* handle4 translates an IPv4 packet leaving a service; the cursor is past
 * the Ethernet header. */
static __always_inline int handle4(struct __sk_buff *skb, struct cursor *c, void *data, struct ethhdr *eth,
				   const struct px_config *cfg)
{
	struct iphdr *ip;
	int l4 = parse_ipv4(c, &ip);
	if (l4 < 0)
		return NM_NEXT;
	if ((ip->daddr & cfg->range_mask) != cfg->range_addr)
		return NM_NEXT; /* not a service IP: nothing to translate */

	struct px_flow f = {.src = ip->saddr, .dst = ip->daddr, .proto = l4};
	struct l4info li = {};
	int r = parse_l4(c, data, l4, 0, &li);
	if (r != PX_L4_OK) {
		if (r == PX_L4_PASS && l4 == IPPROTO_ICMP)
			return px_icmp_error4(skb); /* ICMP other than echo: perhaps an error about a flow */
		count(r == PX_L4_MALFORMED ? PX_MALFORMED : PX_PASS);
		return NM_NEXT;
	}
	f.sport = li.sport;
	f.dport = li.dport;

	struct px_session *s = bpf_map_lookup_elem(&sessions, &f);
	if (!s)
		return new_flow(skb, eth, ip, &f, &li, cfg);
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
		return tunnel_out4(skb, ip, s, &li, cfg, &nh, fr);
	}
	count(PX_HIT); /* the LRU map tracks use itself: no clock read here */
	return translate(skb, eth, ip, s, &li, cfg);
}

/* inbound4 checks a new flow from the tunnel as the user-space tunnel does
 * (its source an instance on the sending node, its destination an instance
 * here) and builds its sessions: both directions unchanged, this one
 * delivered here, replies tunnelled back. 0, or the stats index of the
 * refusal. */
static __always_inline int inbound4(struct px_flow *f, const struct tunnel_from *tf, struct target *t)
{
	__be32 *node = bpf_map_lookup_elem(&remotes, &f->src);
	if (!node || *node != tf->node)
		return PX_DECAP_NOT_PEER_INSTANCE;
	struct px_backend *l = bpf_map_lookup_elem(&locals, &f->dst);
	if (!l)
		return PX_DECAP_NOT_LOCAL;
	__u64 now = bpf_ktime_get_ns();
	t->fwd.new_src = f->src;
	t->fwd.new_dst = f->dst;
	t->fwd.ifindex = l->ifindex;
	__builtin_memcpy(t->fwd.mac, l->mac, 6);
	t->fwd.from_node = tf->node;
	t->fwd.last_seen = now;
	t->rev_key.src = f->dst;
	t->rev_key.dst = f->src;
	t->rev_key.sport = f->dport;
	t->rev_key.dport = f->sport;
	t->rev_key.proto = f->proto;
	t->rev.new_src = f->dst;
	t->rev.new_dst = f->src;
	t->rev.csum_diff = rewrite_diff(f->dst, f->src, f->dst, f->src);
	t->rev.node_ip = tf->node;
	t->rev.node_port = tf->port;
	t->rev.last_seen = now;
	return 0;
}

/* decap4 takes a tunnel datagram from a peer with an inner IPv4 packet: a
 * packet of a flow with a session from that node is translated by it (a
 * reply to a flow sent from here) and delivered; a new flow is checked
 * (inbound4) and delivered unchanged. Anything else is passed on, counted. */
static __always_inline int decap4(struct __sk_buff *skb, const struct px_config *cfg, const struct tunnel_from *tf)
{
	struct cursor c;
	cursor_init(&c, skb);
	void *data = c.pos;
	struct iphdr *ip;
	struct l4info li = {};
	c.pos += sizeof(struct ethhdr) + NM_UDP4_OVERHEAD;
	int l4 = parse_ipv4(&c, &ip);
	if (l4 < 0 || parse_l4(&c, data, l4, 0, &li) != PX_L4_OK) {
		count(PX_DECAP_UNSUPPORTED);
		return NM_NEXT;
	}
	struct px_flow f = {.src = ip->saddr, .dst = ip->daddr, .sport = li.sport, .dport = li.dport, .proto = l4};
	struct px_session *s = bpf_map_lookup_elem(&sessions, &f);
	struct target t = {};
	if (!s) {
		int r = inbound4(&f, tf, &t);
		if (r) {
			count(r);
			return NM_NEXT;
		}
		if (bpf_map_update_elem(&sessions, &t.rev_key, &t.rev, BPF_ANY) ||
		    bpf_map_update_elem(&sessions, &f, &t.fwd, BPF_ANY)) {
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
	if (s->new_src != f.src || s->new_dst != f.dst) {
		__u32 diff = s->csum_diff;
		ip->check = csum_fold(csum_add32(diff, ~(__u32)ip->check));
		ip->saddr = s->new_src;
		ip->daddr = s->new_dst;
		if (l4_csum(skb, &li, diff, 0) < 0) {
			count(PX_ERROR);
			return nm_drop(skb, PX_REASON_CHECKSUM, 0);
		}
	}
	return tunnel_deliver(skb, cfg, tf, ifindex, (__u8 *)mac, 0);
}
