/* proxy: the IPv4 path — its maps, new sessions and the rewrite. */
#pragma once

#include "common.bpf.h"
#include "icmperr.bpf.h"
#include "miss.bpf.h"

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

/* translate applies a session to the packet and redirects it into the target
 * namespace. The session's checksum difference serves the IPv4 header
 * checksum (never offloaded: updated in place, RFC 1624) and the L4 one,
 * which covers the pseudo-header. No helper call on the way: the packet
 * pointers from parsing stay valid. */
static __always_inline int translate(struct __sk_buff *skb, struct ethhdr *eth, struct iphdr *ip, struct px_session *s, struct l4info *li, __u8 *gw_mac)
{
	__u32 diff = s->csum_diff;
	ip->check = csum_fold(csum_add32(diff, ~(__u32)ip->check));
	ip->saddr = s->new_src;
	ip->daddr = s->new_dst;
	set_macs(eth, s->mac, gw_mac);
	if (l4_csum(skb, li, diff, 0) < 0) {
		count(PX_ERROR);
		return NM_DROP;
	}
	return bpf_redirect_peer(s->ifindex, 0);
}

/* new_flow makes the sessions of a flow that has none, both ways, and
 * translates its first packet — or passes it on and reports the miss. */
static __always_inline int new_flow(struct __sk_buff *skb, struct ethhdr *eth, struct iphdr *ip, struct px_flow *f, struct l4info *li, __u8 *gw_mac)
{
	struct target t = {};
	if (resolve(f, skb->ifindex, eth->h_source, &t) < 0) {
		count(PX_PASS);
		report_miss(4, f->proto, &f->dst, &f->src);
		return NM_NEXT; /* the user-space proxy takes it from here */
	}
	if (bpf_map_update_elem(&sessions, &t.rev_key, &t.rev, BPF_ANY) ||
	    bpf_map_update_elem(&sessions, f, &t.fwd, BPF_ANY)) {
		count(PX_ERROR);
		return NM_DROP;
	}
	count(PX_NEW);
	return translate(skb, eth, ip, &t.fwd, li, gw_mac);
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
		return NM_DROP;
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
static __always_inline int handle4(struct __sk_buff *skb, struct cursor *c, void *data, struct ethhdr *eth)
{
	__u32 zero = 0;
	struct px_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return NM_NEXT;
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
		return new_flow(skb, eth, ip, &f, &li, cfg->gw_mac);
	count(PX_HIT); /* the LRU map tracks use itself: no clock read here */
	return translate(skb, eth, ip, s, &li, cfg->gw_mac);
}
