/* sdwan: the next-hop caches. Both paths send a packet on with the MACs of
 * its next hop: the uplink to WAN w's configured next hop, the downlink to
 * wherever the FIB routes the decapsulated packet. Asking bpf_fib_lookup
 * for every packet costs more than the rest of the downlink (a FIB walk and
 * a neighbour lookup); so each CPU keeps what the FIB said, per WAN
 * (wannh) and per downlink key (nhcache, direct-mapped by the key's hash),
 * stamped with the cache generation (sd_cache.gen, sdwan.h) it was asked
 * in. The control plane bumps the generation on every netlink event that
 * can change an answer (links, addresses, routes, rules, nexthops,
 * neighbours), when events were lost, and every nexthopRefresh: a stamp of
 * another generation is asked again. A lookup that fails (no route, no
 * resolved neighbour, too big) is never cached: the packet takes the slow
 * way and the next one asks again. */
#pragma once

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sdwan.h"

#ifndef AF_INET
#define AF_INET (2)
#define AF_INET6 (10)
#endif

/* Results of the lookups below: the first two give a next hop. */
#define SD_NH_HIT (0)     /* from the cache */
#define SD_NH_ASKED (1)   /* asked of the FIB (and cached) */
#define SD_NH_FAILED (2)  /* asked of the FIB, which had no answer to cache */
#define SD_NH_TOO_BIG (3) /* from the cache: the packet is bigger than the route's MTU */

/* The answer a packet goes with, copied out of the cache: the code that
 * follows sees one kind of pointer whether it was cached or asked. */
struct sd_hop {
	__u32 ifindex;
	__u8 dmac[6];
	__u8 smac[6];
};

static __always_inline void sd_hop_from(struct sd_hop *h, const struct sd_nh *nh)
{
	h->ifindex = nh->ifindex;
	__builtin_memcpy(h->dmac, nh->dmac, ETH_ALEN);
	__builtin_memcpy(h->smac, nh->smac, ETH_ALEN);
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sd_cache);
} cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SD_MAX_WANS);
	__type(key, __u32);
	__type(value, struct sd_nh);
} wannh SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1024); /* knob (maxNexthops, a power of two) */
	__type(key, __u32);
	__type(value, struct sd_nh_slot);
} nhcache SEC(".maps");

/* sd_hash_words mixes n 32-bit words (FNV-1a, then the murmur3 finaliser). */
static __always_inline __u32 sd_hash_words(const __u32 *w, int n)
{
	__u32 h = 0x811c9dc5;
#pragma unroll
	for (int i = 0; i < n; i++) {
		h ^= w[i];
		h *= 0x01000193;
	}
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* wan_ask asks the FIB for WAN w's next hop and caches it in this CPU's
 * wannh entry and *out: the neighbour of wan->nexthop on the WAN's
 * interface, as bpf_redirect_neigh would find it. An answer through
 * another interface or another gateway is not the configured next hop and
 * is not used (nor is an unresolved neighbour): SD_NH_FAILED, and the
 * caller leaves resolving to the kernel. A global function, as are the
 * other misses below: the verifier checks it once, and the caller goes on
 * from one state whether the answer was cached or asked. */
__attribute__((noinline)) int wan_ask(struct __sk_buff *skb, const struct sd_wan *wan, __u32 w, __u32 gen,
				      struct sd_hop *out)
{
	struct sd_nh *nh = bpf_map_lookup_elem(&wannh, &w);
	if (!skb || !wan || !out || !nh)
		return SD_NH_FAILED;
	/* tot_len: check the route's MTU against a minimal packet (the WAN's
	 * own MTU is checked by the caller), not the skb against the device. */
	struct bpf_fib_lookup fib = {.family = AF_INET, .l4_protocol = IPPROTO_GRE, .tot_len = sizeof(struct iphdr),
				     .ipv4_src = wan->local, .ipv4_dst = wan->nexthop, .ifindex = wan->ifindex};
	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS || fib.family != AF_INET || fib.ifindex != wan->ifindex ||
	    fib.ipv4_dst != wan->nexthop)
		return SD_NH_FAILED;
	nh->gen = gen;
	nh->ifindex = fib.ifindex;
	nh->mtu = 0;
	__builtin_memcpy(nh->dmac, fib.dmac, ETH_ALEN);
	__builtin_memcpy(nh->smac, fib.smac, ETH_ALEN);
	sd_hop_from(out, nh);
	return SD_NH_ASKED;
}

/* wan_nexthop gives WAN w's next hop into *out, from this CPU's wannh entry
 * while it holds the cache generation gen, else as wan_ask finds it. */
static __always_inline int wan_nexthop(struct __sk_buff *skb, const struct sd_wan *wan, __u32 w, __u32 gen,
				       struct sd_hop *out)
{
	struct sd_nh *nh = bpf_map_lookup_elem(&wannh, &w);
	if (nh && nh->gen == gen && nh->ifindex) {
		sd_hop_from(out, nh);
		return SD_NH_HIT;
	}
	return wan_ask(skb, wan, w, gen, out);
}

/* nh_params sets up a FIB lookup of k's packet of tot_len bytes, as it
 * arrived on its WAN. */
static __always_inline void nh_params(struct bpf_fib_lookup *fib, const struct sd_nh_key *k, __u16 tot_len)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->ifindex = k->ifindex;
	fib->l4_protocol = k->proto;
	fib->tot_len = tot_len;
	if (k->family == 6) {
		fib->family = AF_INET6;
		fib->flowinfo = bpf_htonl((__u32)k->tos << 20);
		__builtin_memcpy(fib->ipv6_src, k->src, 16);
		__builtin_memcpy(fib->ipv6_dst, k->dst, 16);
	} else {
		fib->family = AF_INET;
		fib->tos = k->tos;
		__builtin_memcpy(&fib->ipv4_src, k->src, 4);
		__builtin_memcpy(&fib->ipv4_dst, k->dst, 4);
	}
}

/* nh_slot is the nhcache slot of key k (NULL without a cache). */
static __always_inline struct sd_nh_slot *nh_slot(const struct sd_nh_key *k, __u32 slots)
{
	__u32 i = sd_hash_words((const __u32 *)k, sizeof(*k) / 4) & (slots - 1);
	return slots ? bpf_map_lookup_elem(&nhcache, &i) : NULL;
}

/* lan_ask asks the FIB for the next hop of key k's packet of tot_len bytes
 * and caches it in k's slot (without a cache, it serves this packet alone)
 * and *out: first with the largest length, for the route's MTU (only a
 * lookup refused as too big reports it), then with the packet's own length
 * for the egress interface and the MACs. A packet too big for the route (a
 * GSO one among them) gets no answer: the kernel's stack forwards or
 * refuses it. */
__attribute__((noinline)) int lan_ask(struct __sk_buff *skb, const struct sd_nh_key *k, __u32 tot_len,
				      const struct sd_cache *c, struct sd_hop *out)
{
	struct bpf_fib_lookup fib;
	struct sd_nh nh = {};
	if (!skb || !k || !c || !out)
		return SD_NH_FAILED;
	nh_params(&fib, k, 0xffff);
	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		nh.mtu = fib.mtu_result;
	else if (rc == BPF_FIB_LKUP_RET_SUCCESS)
		nh.mtu = 0xffff;
	else
		return SD_NH_FAILED;
	if (tot_len > nh.mtu)
		return SD_NH_FAILED;
	nh_params(&fib, k, tot_len);
	if (bpf_fib_lookup(skb, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return SD_NH_FAILED;
	nh.gen = c->gen;
	nh.ifindex = fib.ifindex;
	__builtin_memcpy(nh.dmac, fib.dmac, ETH_ALEN);
	__builtin_memcpy(nh.smac, fib.smac, ETH_ALEN);
	sd_hop_from(out, &nh);
	struct sd_nh_slot *s = nh_slot(k, c->nh_slots);
	if (s) {
		s->key = *k;
		s->nh = nh;
	}
	return SD_NH_ASKED;
}

/* lan_nexthop gives the next hop of a decapsulated packet (key k, tot_len
 * bytes of L3) into *out: from this CPU's nhcache slot for k while it holds
 * k's answer of the cache generation, else as lan_ask finds it.
 * SD_NH_FAILED and SD_NH_TOO_BIG: the packet goes up the stack (no route or
 * neighbour, not forwarded, too big for the route). */
static __always_inline int lan_nexthop(struct __sk_buff *skb, const struct sd_nh_key *k, __u16 tot_len,
				       const struct sd_cache *c, struct sd_hop *out)
{
	struct sd_nh_slot *s = nh_slot(k, c->nh_slots);
	if (s && s->nh.gen == c->gen && s->nh.ifindex) {
		const __u32 *sw = (const __u32 *)&s->key, *kw = (const __u32 *)k;
		__u32 diff = 0;
#pragma unroll
		for (int j = 0; j < sizeof(*k) / 4; j++)
			diff |= sw[j] ^ kw[j];
		if (!diff) {
			if (tot_len > s->nh.mtu)
				return SD_NH_TOO_BIG;
			sd_hop_from(out, &s->nh);
			return SD_NH_HIT;
		}
	}
	return lan_ask(skb, k, tot_len, c, out);
}
