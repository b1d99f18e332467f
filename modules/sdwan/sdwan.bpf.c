//go:build ignore

/* sdwan: the LINX data path of an SD-WAN edge gateway. On a LAN interface's
 * ingress, PDRs classify traffic and FARs pass, drop or steer it into a GRE
 * overlay on one of the WANs (chosen by the LBR of its ToS class, sticky per
 * flow); on a WAN interface's ingress, GRE from the WAN's peer is
 * decapsulated and sent to the LAN, and health probes are reflected.
 * See sdwan.h for the maps and the classifier. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bits.h"
#include "csum.h"
#include "encap.h"
#include "parse.h"
#include "verdicts.h"
#include "reasons.h"
#include "sdwan.h"
#include "nexthop.bpf.h"

/* Sizes marked "knob" are set at load time from the config (MapSizes). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sd_state);
} state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32); /* ifindex */
	__type(value, struct sd_role);
} roles SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SD_ROLE_SLOTS);
	__type(key, __u32);
	__type(value, struct sd_role_slot);
} rolecache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SD_MAX_WANS);
	__type(key, __u32);
	__type(value, struct sd_wan);
} wans SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SD_GENS);
	__type(key, __u32);
	__type(value, struct sd_ruleset);
} rulesets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 520); /* knob */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sd_lpm4);
	__type(value, struct sd_bits);
} src4 SEC(".maps"), dst4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 520); /* knob */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sd_lpm6);
	__type(value, struct sd_bits);
} src6 SEC(".maps"), dst6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct sd_bits);
} protos SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SD_CLASSES);
	__type(key, __u32);
	__type(value, struct sd_bits);
} toss SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SD_PORTS);
	__type(key, __u32);
	__type(value, struct sd_bits);
} sports SEC(".maps"), dports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SD_CLASSES + 1);
	__type(key, __u32);
	__type(value, struct sd_lbr);
} lbrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* knob */
	__type(key, struct sd_flow_key);
	__type(value, struct sd_flow);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SD_ST_N);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SD_MAX_WANS);
	__type(key, __u32);
	__type(value, struct sd_wan_stat);
} wanstats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SD_MAX_RULES);
	__type(key, __u32);
	__type(value, __u64);
} ruleflows SEC(".maps"); /* flows classified per rule slot */

static __always_inline void count(__u32 reason)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &reason);
	if (c)
		(*c)++;
}

/* policy is the default verdict: for unmatched uplink traffic, unknown peers
 * and malformed GRE; a drop says why (SD_REASON_*). */
static __always_inline int policy(struct __sk_buff *skb, struct sd_state *st, __u32 reason, __u32 detail)
{
	return st->default_drop ? nm_drop(skb, reason, detail) : NM_NEXT;
}

struct pkt {
	struct sd_flow_key key;
	__u32 l3_len;   /* inner L3 packet: skb->len less the Ethernet header */
	__u32 l4_off;   /* offset of the L4 header from the frame's start */
	__u32 hdr_len;  /* L3 + L4 header bytes */
	__u8 tos;       /* the full ToS / traffic class byte */
	__u8 v6;
	__u8 syn;       /* a TCP SYN */
	__u8 tcp_hlen;  /* TCP header bytes, options included */
	__u8 ttl;
};

/* parse_uplink fills p from a LAN frame; it returns -1 for what is not an
 * untagged IPv4 or IPv6 packet (never ours to steer). */
static __always_inline int parse_uplink(struct __sk_buff *skb, struct pkt *p)
{
	struct cursor c;
	struct ethhdr *eth;
	int l4;

	cursor_init(&c, skb);
	int l3 = parse_eth(&c, &eth);
	if (c.pos != (void *)(eth + 1))
		return -1; /* VLAN tags: the outer header would go after them */
	void *l3start = c.pos;
	if (l3 == ETH_P_IP) {
		struct iphdr *ip;
		l4 = parse_ipv4(&c, &ip);
		if (l4 < 0)
			return -1;
		p->key.family = 4;
		__builtin_memcpy(p->key.src, &ip->saddr, 4);
		__builtin_memcpy(p->key.dst, &ip->daddr, 4);
		p->tos = ip->tos;
		p->ttl = ip->ttl;
	} else if (l3 == ETH_P_IPV6) {
		struct ipv6hdr *ip6;
		l4 = parse_ipv6(&c, &ip6);
		if (l4 < 0)
			return -1;
		p->key.family = 6;
		p->v6 = 1;
		__builtin_memcpy(p->key.src, &ip6->saddr, 16);
		__builtin_memcpy(p->key.dst, &ip6->daddr, 16);
		p->tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
		p->ttl = ip6->hop_limit;
	} else {
		return -1;
	}
	p->key.tos = p->tos & 0xfc;
	p->l3_len = skb->len - sizeof(struct ethhdr);
	p->l4_off = c.pos - (void *)eth;
	p->key.proto = l4 == NM_PROTO_FRAGMENT ? IPPROTO_FRAGMENT : l4;
	if (l4 == IPPROTO_TCP) {
		struct tcphdr *t;
		if (parse_tcp(&c, &t) < 0)
			return -1;
		p->key.sport = t->source;
		p->key.dport = t->dest;
		p->syn = t->syn;
		p->tcp_hlen = t->doff * 4;
	} else if (l4 == IPPROTO_UDP) {
		struct udphdr *u;
		if (parse_udp(&c, &u) < 0)
			return -1;
		p->key.sport = u->source;
		p->key.dport = u->dest;
	}
	p->hdr_len = c.pos - l3start;
	return 0;
}

/* flow_hash mixes the flow key (FNV-1a over its words, then the murmur3
 * finaliser): the LBR slot of a new flow. */
static __always_inline __u32 flow_hash(struct sd_flow_key *k)
{
	return sd_hash_words((const __u32 *)k, sizeof(*k) / 4);
}

/* The matching slots left to visit, and the best one so far. */
struct best_ctx {
	__u64 x[SD_WORDS];
	struct sd_ruleset *rs;
	__u32 best_prec;
	int best;
};

/* best_bit visits one matching slot per call (bpf_loop): the verifier checks
 * the body once, and a packet costs one call per matching rule. */
static long best_bit(__u32 i, void *ctx)
{
	struct best_ctx *m = ctx;
#pragma unroll
	for (int w = 0; w < SD_WORDS; w++) {
		__u64 x = m->x[w];
		if (!x)
			continue;
		__u32 slot = (w * 64 + lowest_bit(x)) & (SD_MAX_RULES - 1);
		m->x[w] = x & (x - 1);
		__u32 prec = m->rs->rule[slot].precedence;
		if (prec < m->best_prec) {
			m->best_prec = prec;
			m->best = slot;
		}
		return 0;
	}
	return 1;
}

#define SD_FIELD(set, any, w) (((set) ? (set)->w[w] : 0) | (any)->w[w])

/* classify returns the slot of the matching PDR with the lowest precedence
 * value, or -1. A global function: the verifier checks it once. */
__attribute__((noinline)) int classify(struct sd_flow_key *k, __u32 gen)
{
	struct sd_bits *src, *dst, *any_src, *any_dst;
	if (!k)
		return -1;
	__u32 g = gen & (SD_GENS - 1);
	struct sd_ruleset *rs = bpf_map_lookup_elem(&rulesets, &g);
	if (!rs)
		return -1;
	if (k->family == 4) {
		struct sd_lpm4 key = {.prefixlen = 32};
		__builtin_memcpy(key.addr, k->src, 4);
		src = bpf_map_lookup_elem(&src4, &key);
		__builtin_memcpy(key.addr, k->dst, 4);
		dst = bpf_map_lookup_elem(&dst4, &key);
		any_src = &rs->any_src4;
		any_dst = &rs->any_dst4;
	} else {
		struct sd_lpm6 key = {.prefixlen = 128};
		__builtin_memcpy(key.addr, k->src, 16);
		src = bpf_map_lookup_elem(&src6, &key);
		__builtin_memcpy(key.addr, k->dst, 16);
		dst = bpf_map_lookup_elem(&dst6, &key);
		any_src = &rs->any_src6;
		any_dst = &rs->any_dst6;
	}
	__u32 i = k->proto;
	struct sd_bits *proto = bpf_map_lookup_elem(&protos, &i);
	i = k->tos >> 2;
	struct sd_bits *tos = bpf_map_lookup_elem(&toss, &i);
	i = bpf_ntohs(k->sport);
	struct sd_bits *sp = bpf_map_lookup_elem(&sports, &i);
	i = bpf_ntohs(k->dport);
	struct sd_bits *dp = bpf_map_lookup_elem(&dports, &i);
	if (!proto || !tos || !sp || !dp)
		return -1;

	struct best_ctx m = {.rs = rs, .best = -1, .best_prec = 0xffffffff};
#pragma unroll
	for (int w = 0; w < SD_WORDS; w++)
		m.x[w] = rs->enabled.w[w] & SD_FIELD(src, any_src, w) & SD_FIELD(dst, any_dst, w) &
			 (proto->w[w] | rs->any_proto.w[w]) & (tos->w[w] | rs->any_tos.w[w]) &
			 (sp->w[w] | rs->any_sport.w[w]) & (dp->w[w] | rs->any_dport.w[w]);
	bpf_loop(SD_MAX_RULES, best_bit, &m, 0);
	return m.best;
}

static __always_inline int wan_up(__u32 w)
{
	struct sd_wan *wan = bpf_map_lookup_elem(&wans, &w);
	return wan && wan->up && wan->ifindex;
}

/* lbr_pick chooses a WAN for a flow of ToS tos from its class's LBR (or the
 * default LBR), else the first WAN that is up; -1 when none is. */
static __always_inline int lbr_pick(__u8 tos, __u32 hash)
{
	__u32 cls = tos >> 2;
	struct sd_lbr *lbr = bpf_map_lookup_elem(&lbrs, &cls);
	if (!lbr || !lbr->nslots) {
		cls = SD_CLASS_DEFAULT;
		lbr = bpf_map_lookup_elem(&lbrs, &cls);
	}
	if (lbr && lbr->nslots) {
		__u32 w = lbr->wan[hash % SD_LBR_SLOTS];
		if (wan_up(w))
			return w;
	}
#pragma unroll
	for (__u32 w = 0; w < SD_MAX_WANS; w++)
		if (wan_up(w))
			return w;
	return -1;
}

/* pick_wan chooses the WAN for a flow whose FAR redirects to target: a WAN
 * of its own while it is up, else the LBR. */
static __always_inline int pick_wan(__u8 target, __u8 tos, __u32 hash)
{
	if (target < SD_MAX_WANS && wan_up(target))
		return target;
	return lbr_pick(tos, hash);
}

/* classify_flow fills f for a new flow, or for one cached before the last
 * change (old): a flow that goes on to the same redirect keeps its WAN. */
static __always_inline void classify_flow(struct pkt *p, struct sd_state *st, struct sd_flow *old, struct sd_flow *f)
{
	/* One read of the generation: the slot and its rule from one set. */
	__u32 g = *(volatile __u32 *)&st->gen & (SD_GENS - 1);
	int slot = classify(&p->key, g);
	struct sd_ruleset *rs = bpf_map_lookup_elem(&rulesets, &g);
	f->epoch = st->epoch;
	f->hash = old ? old->hash : flow_hash(&p->key);
	f->rule = SD_NO_RULE;
	f->action = 0; /* the default policy */
	f->target = 0;
	f->wan = 0;
	count(SD_ST_CLASSIFIED);
	if (slot < 0 || !rs)
		return;
	__u32 s = slot & (SD_MAX_RULES - 1);
	f->rule = s;
	f->action = rs->rule[s].action;
	f->target = rs->rule[s].target;
	__u64 *n = bpf_map_lookup_elem(&ruleflows, &s);
	if (n)
		(*n)++;
	if (f->action != SD_REDIRECT || f->target == SD_TARGET_LAN)
		return;
	if (old && old->action == SD_REDIRECT && old->target == f->target && wan_up(old->wan)) {
		f->wan = old->wan;
		return;
	}
	int w = pick_wan(f->target, p->tos, f->hash);
	f->wan = w < 0 ? SD_MAX_WANS : w;
}

/* clamp_mss lowers the MSS option of a TCP SYN so the peer's segments fit
 * the WAN after encapsulation. */
static __always_inline void clamp_mss(struct __sk_buff *skb, struct pkt *p, __u32 mtu)
{
	__u8 opts[72] = {}; /* indexes are masked with 63 below */
	/* The helper's size must be proven within [1, sizeof(opts)]: both bounds
	 * are checked on the one 64-bit register the helper gets, with barriers
	 * that keep the compiler from folding the two checks into one comparison
	 * of a copy (whose bounds the verifier of 7.2 no longer carries back:
	 * "R4 invalid zero-sized read"). Options are 4 to 40 bytes. */
	__u64 optlen = p->tcp_hlen;
	if (optlen > sizeof(struct tcphdr) + 40)
		return;
	asm volatile("" : "+r"(optlen));
	if (optlen < sizeof(struct tcphdr) + 4)
		return;
	asm volatile("%0 -= 20" : "+r"(optlen));
	__u32 l3hdr = p->hdr_len - p->tcp_hlen;
	__u32 max = mtu - NM_GRE4_OVERHEAD - l3hdr - sizeof(struct tcphdr);
	if (bpf_skb_load_bytes(skb, p->l4_off + sizeof(struct tcphdr), opts, optlen))
		return;
	__u32 i = 0;
	for (int n = 0; n < 20; n++) {
		if (i + 4 > optlen)
			return;
		/* A mask the compiler cannot drop: the verifier sees the index bounded. */
		asm volatile("%0 &= 63" : "+r"(i));
		__u8 kind = opts[i];
		if (kind == 0)
			return;
		if (kind == 1) {
			i++;
			continue;
		}
		__u8 len = opts[i + 1];
		if (kind == 2 && len == 4) {
			__u16 mss = ((__u16)opts[i + 2] << 8) | opts[i + 3];
			if (mss <= max)
				return;
			__be16 from = bpf_htons(mss), to = bpf_htons(max);
			__u32 off = p->l4_off + sizeof(struct tcphdr) + i + 2;
			if (bpf_l4_csum_replace(skb, p->l4_off + offsetof(struct tcphdr, check), from, to, 2))
				return;
			if (bpf_skb_store_bytes(skb, off, &to, 2, 0))
				return;
			count(SD_ST_MSS_CLAMPED);
			return;
		}
		if (len < 2)
			return;
		i += len;
	}
}

/* encap wraps the packet in outer IPv4 + GRE for WAN w and sends it to the
 * WAN's next hop with the MACs this CPU cached for it (wan_nexthop, in the
 * cache generation gen); while it has none, the kernel's neighbour table
 * supplies them (bpf_redirect_neigh). */
static __always_inline int encap(struct __sk_buff *skb, struct pkt *p, __u32 w, __u32 gen)
{
	struct sd_wan *wan = bpf_map_lookup_elem(&wans, &w);
	if (!wan)
		return nm_drop(skb, SD_REASON_ENCAP_ERROR, w);
	/* A GSO packet is cut into segments of its headers plus gso_size; the
	 * kernel lowers gso_size by the outer header, so each still fits if
	 * it fits now. */
	__u32 seg = skb->gso_size ? p->hdr_len + skb->gso_size : p->l3_len + NM_GRE4_OVERHEAD;
	if (seg > wan->mtu) {
		count(SD_ST_MTU_DROP);
		return nm_drop(skb, SD_REASON_MTU, w);
	}
	if (p->syn)
		clamp_mss(skb, p, wan->mtu);
	__u8 tos = wan->tos == SD_TOS_INHERIT ? p->tos : wan->tos;
	if (bpf_skb_adjust_room(skb, NM_GRE4_OVERHEAD, BPF_ADJ_ROOM_MAC, NM_ENCAP_GRE4_FLAGS)) {
		count(SD_ST_ENCAP_ERROR);
		return nm_drop(skb, SD_REASON_ENCAP_ERROR, w);
	}
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct nm_grehdr *gre = (void *)(ip + 1);
	void *inner = gre + 1;
	if (inner + sizeof(struct ipv6hdr) > end)
		return nm_drop(skb, SD_REASON_ENCAP_ERROR, w);
	eth->h_proto = bpf_htons(ETH_P_IP);
	outer4_fill(ip, wan->csum_base, wan->local, wan->peer, wan->ttl, tos, p->l3_len);
	gre->flags = 0;
	/* The gateway forwards the inner packet: one hop less. */
	if (p->v6) {
		gre->proto = bpf_htons(ETH_P_IPV6);
		((struct ipv6hdr *)inner)->hop_limit--;
	} else {
		struct iphdr *in = inner;
		gre->proto = bpf_htons(ETH_P_IP);
		__u32 check = in->check + bpf_htons(0x0100);
		in->check = check + (check >= 0xffff);
		in->ttl--;
	}
	struct sd_wan_stat *ws = bpf_map_lookup_elem(&wanstats, &w);
	if (ws) {
		ws->tx_packets++;
		ws->tx_bytes += p->l3_len;
	}
	struct sd_hop nh;
	int r = wan_nexthop(skb, wan, w, gen, &nh);
	if (r != SD_NH_HIT)
		count(SD_ST_NH_LOOKUP);
	if (r != SD_NH_FAILED) {
		eth = (void *)(long)skb->data; /* past a call, the packet is checked anew */
		if ((void *)(eth + 1) > (void *)(long)skb->data_end)
			return nm_drop(skb, SD_REASON_ENCAP_ERROR, w);
		__builtin_memcpy(eth->h_dest, nh.dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, nh.smac, ETH_ALEN);
		return bpf_redirect(nh.ifindex, 0);
	}
	struct bpf_redir_neigh rn = {.nh_family = AF_INET, .ipv4_nh = wan->nexthop};
	return bpf_redirect_neigh(wan->ifindex, &rn, sizeof(rn), 0);
}

static __always_inline int uplink(struct __sk_buff *skb, __u32 gen)
{
	__u32 zero = 0;
	struct sd_state *st = bpf_map_lookup_elem(&state, &zero);
	if (!st)
		return NM_NEXT;
	struct pkt p = {};
	if (parse_uplink(skb, &p) < 0)
		return NM_NEXT;
	struct sd_flow fresh;
	struct sd_flow *f = bpf_map_lookup_elem(&flows, &p.key);
	if (!f || f->epoch != st->epoch) {
		classify_flow(&p, st, f, &fresh);
		bpf_map_update_elem(&flows, &p.key, &fresh, BPF_ANY);
		f = &fresh;
	}
	switch (f->action) {
	case SD_PASS:
		count(SD_ST_FAR_PASS);
		return NM_NEXT;
	case SD_DROP:
		count(SD_ST_FAR_DROP);
		return nm_drop(skb, SD_REASON_FAR_DROP, f->rule);
	case SD_REDIRECT:
		break;
	default:
		count(SD_ST_NO_MATCH);
		return policy(skb, st, SD_REASON_DEFAULT_DROP, 0);
	}
	if (f->target == SD_TARGET_LAN) {
		count(SD_ST_TO_LAN);
		return NM_NEXT;
	}
	if (p.ttl <= 1)
		return NM_NEXT; /* the kernel answers with time exceeded */
	__u32 w = f->wan;
	if (!wan_up(w)) {
		int nw = pick_wan(f->target, p.tos, f->hash);
		if (nw < 0) {
			count(SD_ST_NO_WAN);
			return policy(skb, st, SD_REASON_NO_WAN, 0);
		}
		if (w < SD_MAX_WANS)
			count(SD_ST_FAILOVER);
		w = nw;
		f->wan = nw;
		if (f == &fresh)
			bpf_map_update_elem(&flows, &p.key, &fresh, BPF_ANY);
	}
	return encap(skb, &p, w, gen);
}

/* reflect answers a probe request on the WAN it came from. */
static __always_inline int reflect(struct __sk_buff *skb, struct ethhdr *eth, struct iphdr *ip, struct sd_probe *pr)
{
	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
	__be32 a = ip->saddr; /* swapping addresses keeps the checksum */
	ip->saddr = ip->daddr;
	ip->daddr = a;
	pr->type = SD_PROBE_REPLY;
	count(SD_ST_PROBE_REFLECTED);
	return bpf_redirect(skb->ifindex, 0);
}

/* deliver sends a decapsulated packet to the LAN host: to the next hop the
 * kernel's FIB names (cached per CPU, lan_nexthop), or up the stack when
 * there is none yet or the packet is too big for the route. */
static __always_inline int deliver(struct __sk_buff *skb, int v6, const struct sd_cache *c)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct sd_nh_key key = {.ifindex = skb->ifindex};
	__u16 tot_len;
	if (v6) {
		struct ipv6hdr *ip6 = data + sizeof(*eth);
		if ((void *)(ip6 + 1) > end)
			return nm_drop(skb, SD_REASON_DECAP_ERROR, 0); /* the decapsulated packet is cut short */
		if (ip6->hop_limit <= 1)
			goto stack;
		key.family = 6;
		key.proto = ip6->nexthdr;
		key.tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
		tot_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		__builtin_memcpy(key.src, &ip6->saddr, 16);
		__builtin_memcpy(key.dst, &ip6->daddr, 16);
	} else {
		struct iphdr *ip = data + sizeof(*eth);
		if ((void *)(ip + 1) > end)
			return nm_drop(skb, SD_REASON_DECAP_ERROR, 0); /* the decapsulated packet is cut short */
		if (ip->ttl <= 1)
			goto stack;
		key.family = 4;
		key.proto = ip->protocol;
		key.tos = ip->tos;
		tot_len = bpf_ntohs(ip->tot_len);
		__builtin_memcpy(key.src, &ip->saddr, 4);
		__builtin_memcpy(key.dst, &ip->daddr, 4);
	}
	key.tos &= 0xfc; /* the FIB ignores ECN */
	struct sd_hop nh;
	int r = lan_nexthop(skb, &key, tot_len, c, &nh);
	if (r == SD_NH_ASKED || r == SD_NH_FAILED)
		count(SD_ST_NH_LOOKUP);
	if (r != SD_NH_HIT && r != SD_NH_ASKED)
		goto stack;
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)eth + sizeof(*eth) + sizeof(struct ipv6hdr) > end)
		return nm_drop(skb, SD_REASON_DECAP_ERROR, 0); /* the decapsulated packet is cut short */
	if (v6) {
		((struct ipv6hdr *)(eth + 1))->hop_limit--;
	} else {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 check = ip->check + bpf_htons(0x0100);
		ip->check = check + (check >= 0xffff);
		ip->ttl--;
	}
	__builtin_memcpy(eth->h_dest, nh.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, nh.smac, ETH_ALEN);
	return bpf_redirect(nh.ifindex, 0);
stack:
	count(SD_ST_TO_STACK);
	return NM_NEXT;
}

static __always_inline int downlink(struct __sk_buff *skb, __u32 w, const struct sd_cache *cache)
{
	__u32 zero = 0;
	struct sd_state *st = bpf_map_lookup_elem(&state, &zero);
	struct sd_wan *wan = bpf_map_lookup_elem(&wans, &w);
	if (!st || !wan)
		return NM_NEXT;
	struct cursor c;
	struct ethhdr *eth;
	struct iphdr *ip;
	cursor_init(&c, skb);
	if (parse_eth(&c, &eth) != ETH_P_IP || c.pos != (void *)(eth + 1))
		return NM_NEXT; /* not IPv4 GRE: the WAN's own traffic */
	int l4 = parse_ipv4(&c, &ip);
	if (l4 != IPPROTO_GRE && !(l4 == NM_PROTO_FRAGMENT && ip->protocol == IPPROTO_GRE))
		return NM_NEXT;
	if (ip->saddr != wan->peer || ip->daddr != wan->local) {
		count(SD_ST_UNKNOWN_PEER);
		return policy(skb, st, SD_REASON_UNKNOWN_PEER, w);
	}
	struct nm_grehdr *gre = cursor_take(&c, sizeof(*gre));
	if (l4 == NM_PROTO_FRAGMENT || (ip->frag_off & bpf_htons(0x2000)) || !gre || gre->flags)
		goto malformed; /* fragments cannot be decapsulated one by one */
	__u32 olen = (void *)(gre + 1) - (void *)ip;
	int v6;
	if (gre->proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *in = c.pos;
		if ((void *)(in + 1) > c.end || in->version != 4)
			goto malformed;
		v6 = 0;
	} else if (gre->proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *in = c.pos;
		if ((void *)(in + 1) > c.end || in->version != 6)
			goto malformed;
		v6 = 1;
	} else if (gre->proto == bpf_htons(SD_PROBE_PROTO)) {
		struct sd_probe *pr = cursor_take(&c, sizeof(*pr));
		if (!pr || pr->magic != bpf_htonl(SD_PROBE_MAGIC))
			goto malformed;
		if (pr->type == SD_PROBE_REQUEST)
			return reflect(skb, eth, ip, pr);
		count(SD_ST_PROBE_REPLY);
		return NM_NEXT;
	} else {
		goto malformed;
	}
	__u32 len = skb->len;
	if (nm_decap4(skb, olen, v6)) {
		count(SD_ST_DECAP_ERROR);
		return nm_drop(skb, SD_REASON_DECAP_ERROR, w);
	}
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return nm_drop(skb, SD_REASON_DECAP_ERROR, w);
	eth->h_proto = v6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP);
	struct sd_wan_stat *ws = bpf_map_lookup_elem(&wanstats, &w);
	if (ws) {
		ws->rx_packets++;
		ws->rx_bytes += len - sizeof(*eth) - olen;
	}
	return deliver(skb, v6, cache);
malformed:
	count(SD_ST_MALFORMED);
	return policy(skb, st, SD_REASON_MALFORMED, w);
}

/* role_of gives the role of the interface ifindex: from this CPU's
 * rolecache while it holds the cache generation gen, else from roles (the
 * control plane's), cached. An interface without a role is cached as one
 * (role 0): the control plane bumps the generation when it gives one. */
static __always_inline struct sd_role *role_of(__u32 ifindex, __u32 gen)
{
	__u32 i = ifindex & (SD_ROLE_SLOTS - 1);
	struct sd_role_slot *s = bpf_map_lookup_elem(&rolecache, &i);
	if (!s)
		return NULL;
	if (s->ifindex != ifindex || s->gen != gen) {
		struct sd_role *r = bpf_map_lookup_elem(&roles, &ifindex);
		s->ifindex = ifindex;
		s->gen = gen;
		s->role.role = r ? r->role : 0;
		s->role.wan = r ? r->wan : 0;
		/* The caller reads the role from the slot, never from roles'
		 * value: both ways here end in one state (else the verifier
		 * of 6.1 checks everything after twice: +17,000 processed
		 * instructions). */
		asm volatile("" ::: "memory");
	}
	return &s->role;
}

/* Both roles are on the interface's TC ingress hook. */
NM_PROG int nm_ingress(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct sd_cache *c = bpf_map_lookup_elem(&cache, &zero);
	if (!c)
		return NM_NEXT;
	/* One read of the generation: every cache this packet uses is
	 * judged by it. */
	struct sd_cache now = {.gen = *(volatile __u32 *)&c->gen, .nh_slots = c->nh_slots};
	struct sd_role *r = role_of(skb->ifindex, now.gen);
	if (!r)
		return NM_NEXT;
	if (r->role == SD_ROLE_LAN)
		return uplink(skb, now.gen);
	if (r->role == SD_ROLE_WAN)
		return downlink(skb, r->wan, &now);
	return NM_NEXT;
}

/* Nothing to do on the way out: the gateway's own traffic and what ingress
 * redirected leave as they are. */
NM_PROG int nm_egress(struct __sk_buff *skb)
{
	return NM_NEXT;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
