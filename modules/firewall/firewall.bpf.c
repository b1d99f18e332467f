//go:build ignore

/* firewall: ordered allow/deny rules on prefixes, protocol, port ranges and
 * direction, with a stateful pass for replies. Allow is "next" (later
 * modules still run), deny is a drop. See firewall.h for the classifier. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bits.h"
#include "parse.h"
#include "verdicts.h"
#include "reasons.h"
#include "firewall.h"

/* Sizes marked "knob" are set at load time from the config (MapSizes). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fw_state);
} state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 2050); /* knob */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fw_lpm4);
	__type(value, struct fw_bits);
} src4 SEC(".maps"), dst4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 2050); /* knob */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fw_lpm6);
	__type(value, struct fw_bits);
} src6 SEC(".maps"), dst6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * 256);
	__type(key, __u32);
	__type(value, struct fw_bits);
} protos SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * 2);
	__type(key, __u32);
	__type(value, struct fw_bits);
} dirs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * FW_PORTS);
	__type(key, __u32);
	__type(value, __u16);
} sport_class SEC(".maps"), dport_class SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * FW_MAX_CLASSES);
	__type(key, __u32);
	__type(value, struct fw_bits);
} sport_bits SEC(".maps"), dport_bits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * FW_MAX_RULES);
	__type(key, __u32);
	__type(value, struct fw_rule);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * FW_MAX_RULES);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024); /* knob */
	__type(key, struct fw_stat_key);
	__type(value, struct fw_stat);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* knob */
	__type(key, struct fw_flow);
	__type(value, struct fw_seen);
} flows SEC(".maps");

/* The AND over the words in use runs in bpf_loop, FW_CHUNK words per
 * iteration, so the verifier checks the body once, and a large rule set costs
 * a few more iterations rather than one per word. Words past the rule count
 * are zero in every table, so a whole chunk can always be read. */
#define FW_CHUNK (8)

struct match_ctx {
	struct fw_bits *src, *dst, *proto, *dir, *sport, *dport;
	int found;
};

static long match_chunk(__u32 i, void *ctx)
{
	struct match_ctx *m = ctx;
	/* bpf_loop keeps i below FW_WORDS / FW_CHUNK; the mask (a power of two)
	 * lets the verifier see every index in bounds. */
	__u32 base = (i & (FW_WORDS / FW_CHUNK - 1)) * FW_CHUNK;
#pragma unroll
	for (__u32 j = 0; j < FW_CHUNK; j++) {
		__u32 w = base + j;
		__u64 x = m->src->w[w] & m->dst->w[w] & m->proto->w[w] & m->dir->w[w] & m->sport->w[w] & m->dport->w[w];
		if (x) {
			m->found = w * 64 + lowest_bit(x);
			return 1;
		}
	}
	return 0;
}

struct pkt {
	struct fw_flow flow;
	int has_ports;  /* L4 ports (or ICMP echo id) present */
	int echo;       /* ICMP(v6) echo: 1 request, 2 reply */
};

static __always_inline void count(struct __sk_buff *skb, __u32 dir, int allowed)
{
	struct fw_stat_key k = {.ifindex = skb->ifindex, .dir = dir};
	struct fw_stat *s = bpf_map_lookup_elem(&stats, &k);
	if (!s) {
		struct fw_stat zero = {};
		bpf_map_update_elem(&stats, &k, &zero, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&stats, &k);
		if (!s)
			return;
	}
	if (allowed)
		s->allowed++;
	else
		s->denied++;
}

/* parse fills p; it returns 0 for IP, 1 for non-IP traffic (never judged),
 * -1 for a malformed packet. */
static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
	struct cursor c;
	struct ethhdr *eth;
	int l4;

	cursor_init(&c, skb);
	int l3 = parse_eth(&c, &eth);
	if (l3 == ETH_P_IP) {
		struct iphdr *ip;
		l4 = parse_ipv4(&c, &ip);
		if (l4 < 0)
			return -1;
		p->flow.family = 4;
		__builtin_memcpy(p->flow.saddr, &ip->saddr, 4);
		__builtin_memcpy(p->flow.daddr, &ip->daddr, 4);
	} else if (l3 == ETH_P_IPV6) {
		struct ipv6hdr *ip6;
		l4 = parse_ipv6(&c, &ip6);
		if (l4 < 0)
			return -1;
		p->flow.family = 6;
		__builtin_memcpy(p->flow.saddr, &ip6->saddr, 16);
		__builtin_memcpy(p->flow.daddr, &ip6->daddr, 16);
	} else {
		return l3 < 0 ? -1 : 1;
	}
	if (l4 == NM_PROTO_FRAGMENT) {
		/* A later fragment: no L4 header, so only port-less rules can match.
		 * Its protocol is unknown here; judge it as the fragment header. */
		p->flow.proto = IPPROTO_FRAGMENT;
		return 0;
	}
	p->flow.proto = l4;
	if (l4 == IPPROTO_TCP) {
		struct tcphdr *t;
		if (parse_tcp(&c, &t) < 0)
			return -1;
		p->flow.sport = bpf_ntohs(t->source);
		p->flow.dport = bpf_ntohs(t->dest);
		p->has_ports = 1;
	} else if (l4 == IPPROTO_UDP) {
		struct udphdr *u;
		if (parse_udp(&c, &u) < 0)
			return -1;
		p->flow.sport = bpf_ntohs(u->source);
		p->flow.dport = bpf_ntohs(u->dest);
		p->has_ports = 1;
	} else if (l4 == IPPROTO_ICMP) {
		struct nm_icmphdr *i;
		if (parse_icmp(&c, &i) < 0)
			return -1;
		if (i->type == ICMP_ECHO || i->type == ICMP_ECHOREPLY) {
			p->echo = i->type == ICMP_ECHO ? 1 : 2;
			p->flow.sport = p->flow.dport = bpf_ntohs((__u16)i->rest);
		}
	} else if (l4 == IPPROTO_ICMPV6) {
		struct icmp6hdr *i;
		if (parse_icmp6(&c, &i) < 0)
			return -1;
		if (i->icmp6_type == 128 || i->icmp6_type == 129) {
			p->echo = i->icmp6_type == 128 ? 1 : 2;
			p->flow.sport = p->flow.dport = bpf_ntohs(i->icmp6_dataun.u_echo.identifier);
		}
	}
	return 0;
}

/* classify returns the index of the first matching rule, or -1. It is a
 * global function, so the verifier checks it once on its own instead of once
 * per path through the parser. */
__attribute__((noinline)) int classify(struct pkt *p, __u32 gen, __u32 words, __u32 dir)
{
	struct fw_bits *src, *dst, *proto, *sp, *dp, *d;
	__u32 k;

	if (!p)
		return -1;
	gen &= 1;
	dir &= 1;

	if (p->flow.family == 4) {
		struct fw_lpm4 key = {.prefixlen = 8 + 32, .gen = gen};
		__builtin_memcpy(key.addr, p->flow.saddr, 4);
		src = bpf_map_lookup_elem(&src4, &key);
		__builtin_memcpy(key.addr, p->flow.daddr, 4);
		dst = bpf_map_lookup_elem(&dst4, &key);
	} else {
		struct fw_lpm6 key = {.prefixlen = 8 + 128, .gen = gen};
		__builtin_memcpy(key.addr, p->flow.saddr, 16);
		src = bpf_map_lookup_elem(&src6, &key);
		__builtin_memcpy(key.addr, p->flow.daddr, 16);
		dst = bpf_map_lookup_elem(&dst6, &key);
	}
	k = gen * 256 + p->flow.proto;
	proto = bpf_map_lookup_elem(&protos, &k);
	k = gen * 2 + dir;
	d = bpf_map_lookup_elem(&dirs, &k);

	__u32 sclass = 0, dclass = 0; /* class 0: no ports */
	if (p->has_ports) {
		k = gen * FW_PORTS + p->flow.sport;
		__u16 *c = bpf_map_lookup_elem(&sport_class, &k);
		if (c)
			sclass = *c;
		k = gen * FW_PORTS + p->flow.dport;
		c = bpf_map_lookup_elem(&dport_class, &k);
		if (c)
			dclass = *c;
	}
	k = gen * FW_MAX_CLASSES + sclass;
	sp = bpf_map_lookup_elem(&sport_bits, &k);
	k = gen * FW_MAX_CLASSES + dclass;
	dp = bpf_map_lookup_elem(&dport_bits, &k);
	if (!src || !dst || !proto || !d || !sp || !dp)
		return -1;

	struct match_ctx m = {.src = src, .dst = dst, .proto = proto, .dir = d, .sport = sp, .dport = dp, .found = -1};
	__u32 chunks = (words + FW_CHUNK - 1) / FW_CHUNK;
	if (chunks > FW_WORDS / FW_CHUNK)
		chunks = FW_WORDS / FW_CHUNK;
	bpf_loop(chunks, match_chunk, &m, 0);
	return m.found;
}

static __always_inline void reverse(struct fw_flow *r, struct fw_flow *f)
{
	*r = *f;
	__builtin_memcpy(r->saddr, f->daddr, 16);
	__builtin_memcpy(r->daddr, f->saddr, 16);
	r->sport = f->dport;
	r->dport = f->sport;
}

/* fresh: whether a flow entry is within its timeout. An entry stamped a
 * little after now (by another CPU since our clock read, or by an earlier
 * data plane on the fine clock, re-adopted over this pinned table) is fresh:
 * the difference is taken signed, so it never wraps to "expired". */
static __always_inline int fresh(struct fw_state *st, struct fw_seen *e, __u64 now)
{
	return (__s64)(now - e->seen) < (__s64)st->flow_timeout;
}

/* stateful_pass: whether the flow table lets p through without the rules:
 * a reply of an allowed flow, or a further packet of a flow the running rule
 * set allowed (then counted as its rule's hit). It refreshes the entry. */
static __always_inline int stateful_pass(struct fw_state *st, struct pkt *p, __u64 now)
{
	struct fw_seen *e = bpf_map_lookup_elem(&flows, &p->flow);
	if (e && fresh(st, e, now)) {
		if (e->seen != now) /* once a tick: no store, no cache line taken from another CPU */
			e->seen = now;
		return 1;
	}
	if (p->echo == 2)
		return 0; /* echo replies never make entries */
	struct fw_flow rev;
	reverse(&rev, &p->flow);
	e = bpf_map_lookup_elem(&flows, &rev);
	if (!e || e->version != st->version || !fresh(st, e, now))
		return 0;
	if (e->seen != now)
		e->seen = now;
	if (e->slot != FW_SLOT_NONE) {
		__u32 k = e->slot;
		__u64 *h = bpf_map_lookup_elem(&hits, &k);
		if (h)
			(*h)++;
	}
	return 1;
}

static __always_inline int judge(struct __sk_buff *skb, __u32 dir)
{
	__u32 zero = 0;
	struct fw_state *st = bpf_map_lookup_elem(&state, &zero);
	if (!st)
		return NM_NEXT;
	struct pkt p = {};
	int r = parse(skb, &p);
	if (r == 1)
		return NM_NEXT; /* not IP: not ours to judge */
	if (r < 0) {
		count(skb, dir, 0);
		return nm_drop(skb, FW_REASON_MALFORMED, 0);
	}
	p.flow.ifindex = skb->ifindex;
	int flowable = p.has_ports || p.echo;
	/* a tick's precision is plenty for a flow timeout, and a clock read
	 * costs ~15 ns a packet here that this one does not */
	__u64 now = bpf_ktime_get_coarse_ns();

	if (st->stateful && flowable && stateful_pass(st, &p, now)) {
		count(skb, dir, 1);
		return NM_NEXT;
	}

	/* version before gen: the control plane bumps version only after the
	 * flip of gen is written, so a version read here never belongs to a
	 * newer rule set than the gen read after it; an entry stamped with it
	 * is trusted only while that version runs. */
	__u32 version = *(volatile __u32 *)&st->version;
	asm volatile("" ::: "memory");
	__u32 gen = st->gen & 1;
	__u32 words = st->words[gen];
	int idx = classify(&p, gen, words, dir);
	int deny = st->default_deny;
	__u32 reason = FW_REASON_DEFAULT_DENY, slot = FW_SLOT_NONE;
	if (idx >= 0) {
		__u32 k = gen * FW_MAX_RULES + idx;
		struct fw_rule *rule = bpf_map_lookup_elem(&rules, &k);
		if (rule)
			deny = rule->action == FW_DENY;
		__u64 *h = bpf_map_lookup_elem(&hits, &k);
		if (h)
			(*h)++;
		reason = FW_REASON_RULE;
		slot = k;
	}
	count(skb, dir, !deny);
	if (deny)
		return nm_drop(skb, reason, slot == FW_SLOT_NONE ? 0 : slot);
	if (st->stateful && flowable && p.echo != 2) {
		struct fw_flow rev;
		struct fw_seen e = {.seen = now, .version = version, .slot = slot};
		reverse(&rev, &p.flow);
		bpf_map_update_elem(&flows, &rev, &e, BPF_ANY);
	}
	return NM_NEXT;
}

/* The host veth's TC ingress hook carries traffic leaving the service. */
NM_PROG int nm_ingress(struct __sk_buff *skb)
{
	return judge(skb, FW_DIR_EGRESS);
}

NM_PROG int nm_egress(struct __sk_buff *skb)
{
	return judge(skb, FW_DIR_INGRESS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
