/* proxy: the IPv4 path — its maps, new sessions and the rewrite. */
#pragma once

#include "common.bpf.h"
#include "miss.bpf.h"
#include "csum.h"

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
	t->fwd.last_seen = now;
	t->rev.new_src = f->dst;
	t->rev.new_dst = f->src;
	t->rev.ifindex = sender_ifindex;
	__builtin_memcpy(t->rev.mac, sender_mac, 6);
	t->rev.last_seen = now;
	t->rev_key.src = b->ns_ip;
	t->rev_key.dst = *inst;
	t->rev_key.sport = f->dport;
	t->rev_key.dport = f->sport;
	t->rev_key.proto = f->proto;
	return 0;
}

/* rewrite applies a session to the packet. The IPv4 header checksum (never
 * offloaded) is updated in place (RFC 1624); the L4 checksum covers the
 * pseudo-header and may be CHECKSUM_PARTIAL, so it goes through
 * bpf_l4_csum_replace with the difference of both addresses, computed here —
 * one helper call per packet. Offsets are from the start of the frame. */
static __always_inline int rewrite(struct __sk_buff *skb, struct px_flow *f, struct px_session *s, __u32 l3off, struct l4info *li, __u8 *gw_mac)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if (l3off > 64)
		return -1;
	struct iphdr *ip = data + l3off;
	if ((void *)(eth + 1) > data_end || (void *)(ip + 1) > data_end)
		return -1;
	ip->check = csum_replace4(ip->check, f->src, s->new_src);
	ip->check = csum_replace4(ip->check, f->dst, s->new_dst);
	ip->saddr = s->new_src;
	ip->daddr = s->new_dst;
	__builtin_memcpy(eth->h_dest, s->mac, 6);
	__builtin_memcpy(eth->h_source, gw_mac, 6);
	__u32 diff = csum_add32(csum_add32(~f->src, ~f->dst), csum_add32(s->new_src, s->new_dst));
	return l4_csum(skb, li, diff, 0);
}

/* handle4 translates an IPv4 packet leaving a service; the cursor is past
 * the Ethernet header, at data + l3off. */
static __always_inline int handle4(struct __sk_buff *skb, struct cursor *c, void *data, struct ethhdr *eth)
{
	__u32 zero = 0;
	struct px_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return NM_NEXT;
	__u32 l3off = c->pos - data;
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
		count(r == PX_L4_MALFORMED ? PX_MALFORMED : PX_PASS);
		return NM_NEXT;
	}
	f.sport = li.sport;
	f.dport = li.dport;

	struct px_session *s = bpf_map_lookup_elem(&sessions, &f);
	struct target t = {};
	if (s) {
		count(PX_HIT); /* the LRU map tracks use itself: no clock read here */
	} else {
		if (resolve(&f, skb->ifindex, eth->h_source, &t) < 0) {
			count(PX_PASS);
			report_miss(4, l4, &f.dst, &f.src);
			return NM_NEXT; /* the user-space proxy takes it from here */
		}
		if (bpf_map_update_elem(&sessions, &t.rev_key, &t.rev, BPF_ANY) ||
		    bpf_map_update_elem(&sessions, &f, &t.fwd, BPF_ANY)) {
			count(PX_ERROR);
			return NM_DROP;
		}
		s = &t.fwd;
		count(PX_NEW);
	}
	__u32 ifindex = s->ifindex;
	if (rewrite(skb, &f, s, l3off, &li, cfg->gw_mac) < 0) {
		count(PX_ERROR);
		return NM_DROP;
	}
	return bpf_redirect_peer(ifindex, 0);
}
