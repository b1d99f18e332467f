/* What the tracer (trace.bpf.c) and the drop monitor (drops.bpf.c) share:
 * the kernel types they read through a BTF sk_buff pointer, the filter's
 * config, the packet's flow and its parser, the filter's packet match and
 * the per-CPU token bucket.
 *
 * The parser follows bpf/parse.h's style (a cursor; each parse_* returns the
 * next protocol or -1) but not its code: bpf/parse.h reads a TC program's
 * packet directly, bounds-checked against __sk_buff data_end, and a tracing
 * program has neither; it holds a struct sk_buff pointer whose packet bytes
 * (head + network_header) are kernel memory, copied here with
 * bpf_probe_read_kernel. bpf/reasons.h is not included either: it declares
 * the nm_drops map, which would land in these objects. */
#pragma once

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define ETH_P_IP_BE (0x0008)   /* htons(0x0800) */
#define ETH_P_IPV6_BE (0xdd86) /* htons(0x86dd) */
/* bpf/reasons.h's NM_REASON_MAGIC and NM_REASON_MASK. */
#define NM_REASON_MAGIC_ (0x4e4d5200u)
#define NM_REASON_MASK_ (0xffffff00u)

/* Only the fields read here; CO-RE finds them in the running kernel. */
struct net_device {
	int ifindex;
} __attribute__((preserve_access_index));

struct sk_buff {
	struct net_device *dev;
	char cb[48];
	unsigned int len;
	__be16 protocol;
	__u16 network_header;
	unsigned char *head;
} __attribute__((preserve_access_index));

struct qdisc_skb_cb {
	unsigned char data[20];
} __attribute__((preserve_access_index));

/* Filter flags (struct config.flags) both programs have; bit 5 is each
 * program's own. */
#define F_IFINDEX (1u << 0) /* only the ifindexes in the program's ifs map */
#define F_PROTO (1u << 1)
#define F_HOST4 (1u << 2)
#define F_HOST6 (1u << 3)
#define F_PORT (1u << 4)
#define F_PACKET (F_PROTO | F_HOST4 | F_HOST6 | F_PORT)

struct config {
	__u32 flags;
	__u8 proto;
	__u8 hooks; /* drops: F_HOOK's mask for an interface not in nm_drop_ifs; trace: 0 */
	__be16 port;
	__u8 host[16];
	__u64 rate;  /* events per second per CPU; 0: unlimited */
	__u64 burst; /* bucket size */
};

/* A packet's addresses and ports, as the events carry them. */
struct flow {
	__u8 family; /* 4, 6, or 0: not IP */
	__u8 proto;
	__be16 sport;
	__be16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct bucket {
	__u64 tokens; /* in nanoseconds' worth of events: tokens * 1e9 / rate */
	__u64 last;
};

/* NM_ONE declares a one-entry map of kind (ARRAY or PERCPU_ARRAY) named name. */
#define NM_ONE(kind, name, value_type)                                         \
	struct {                                                               \
		__uint(type, (kind));                                          \
		__uint(max_entries, 1);                                        \
		__type(key, __u32);                                            \
		__type(value, value_type);                                     \
	} name SEC(".maps")

/* A cursor over kernel memory: pos is the next header's first byte. */
struct kcursor {
	const unsigned char *pos;
};

/* parse_ip4 returns the IP protocol, 0 for a fragment other than the first
 * (no L4 header), -1 if the header cannot be read. */
static __always_inline int parse_ip4(struct kcursor *c, struct flow *f)
{
	__u8 b[20];

	if (bpf_probe_read_kernel(b, sizeof(b), c->pos))
		return -1;
	f->family = 4;
	f->proto = b[9];
	__builtin_memcpy(f->saddr, &b[12], 4);
	__builtin_memcpy(f->daddr, &b[16], 4);
	if ((b[6] & 0x3f) != 0 || b[7] != 0)
		return 0;
	c->pos += (b[0] & 0x0f) * 4;
	return b[9];
}

/* parse_ip6 returns the next header (extension headers are not followed),
 * -1 if the header cannot be read. */
static __always_inline int parse_ip6(struct kcursor *c, struct flow *f)
{
	__u8 b[40];

	if (bpf_probe_read_kernel(b, sizeof(b), c->pos))
		return -1;
	f->family = 6;
	f->proto = b[6];
	__builtin_memcpy(f->saddr, &b[8], 16);
	__builtin_memcpy(f->daddr, &b[24], 16);
	c->pos += 40;
	return b[6];
}

/* parse_ports reads a TCP, UDP or SCTP header's ports; returns 0, or -1. */
static __always_inline int parse_ports(struct kcursor *c, struct flow *f)
{
	__be16 ports[2];

	if (bpf_probe_read_kernel(ports, sizeof(ports), c->pos))
		return -1;
	f->sport = ports[0];
	f->dport = ports[1];
	c->pos += sizeof(ports);
	return 0;
}

/* parse_flow fills f from the packet whose network header is at l3 (proto:
 * the sk_buff's protocol); what cannot be read stays 0. */
static __always_inline void parse_flow(const unsigned char *l3, __be16 proto, struct flow *f)
{
	struct kcursor c = {.pos = l3};
	int next = -1;

	__builtin_memset(f, 0, sizeof(*f));
	if (proto == ETH_P_IP_BE)
		next = parse_ip4(&c, f);
	else if (proto == ETH_P_IPV6_BE)
		next = parse_ip6(&c, f);
	if (next == 6 || next == 17 || next == 132)
		parse_ports(&c, f);
}

static __always_inline int addr_eq(const __u8 *a, const __u8 *b, int n)
{
	for (int i = 0; i < 16; i++) {
		if (i < n && a[i] != b[i])
			return 0;
	}
	return 1;
}

/* match_flow says whether f passes the filter's packet part (F_PACKET). */
static __always_inline int match_flow(const struct config *c, const struct flow *f)
{
	if ((c->flags & F_PROTO) && f->proto != c->proto)
		return 0;
	if (c->flags & F_HOST4) {
		if (f->family != 4 || !(addr_eq(f->saddr, c->host, 4) || addr_eq(f->daddr, c->host, 4)))
			return 0;
	}
	if (c->flags & F_HOST6) {
		if (f->family != 6 || !(addr_eq(f->saddr, c->host, 16) || addr_eq(f->daddr, c->host, 16)))
			return 0;
	}
	if ((c->flags & F_PORT) && f->sport != c->port && f->dport != c->port)
		return 0;
	return 1;
}

/* count_lost adds one to lost, a one-entry per-CPU array of __u64. */
static __always_inline void count_lost(void *lost)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(lost, &zero);

	if (n)
		*n += 1;
}

/* take says whether the per-CPU token bucket (a one-entry per-CPU array of
 * struct bucket) has an event's worth left; a refusal is counted in lost. */
static __always_inline int take(const struct config *c, void *bucket, void *lost)
{
	__u32 zero = 0;
	struct bucket *b;
	__u64 now, cost, cap;

	if (!c->rate)
		return 1;
	b = bpf_map_lookup_elem(bucket, &zero);
	if (!b)
		return 0;
	now = bpf_ktime_get_ns();
	cost = 1000000000ull / c->rate;
	cap = cost * (c->burst ? c->burst : 1);
	b->tokens += now - b->last;
	b->last = now;
	if (b->tokens > cap)
		b->tokens = cap;
	if (b->tokens < cost) {
		count_lost(lost);
		return 0;
	}
	b->tokens -= cost;
	return 1;
}
