/* The eBPF Manager's tracer (issue 23): fentry/fexit programs attached to a
 * chain's TC programs only while a trace or the drop monitor runs.
 *
 * fentry records the packet as the traced program sees it on entry (a module
 * may rewrite it: the proxy DNATs) and decides whether it matches the
 * filter; fexit emits one event per hop of a matching packet with the
 * program's verdict and, for a drop, the reason bpf/reasons.h's nm_drop left
 * in the control block. Which program a hop is comes from the link's attach
 * cookie (an index the loader hands out per target).
 *
 * A packet whose previous hop matched, rewrote its addresses or ports and
 * returned next keeps matching on the next hop (same skb, same interface,
 * same CPU), so a filter on a service IP still shows the hops after a DNAT.
 * (A recycled sk_buff of a new packet matches only on its own.)
 *
 * Output is bounded twice: by the filter, evaluated here, and by a per-CPU
 * token bucket; events the bucket refuses are counted in nm_trace_lost. */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP_BE (0x0008)   /* htons(0x0800) */
#define ETH_P_IPV6_BE (0xdd86) /* htons(0x86dd) */
#define TC_ACT_SHOT_ (2)
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

/* Filter flags (struct config.flags). */
#define F_IFINDEX (1u << 0) /* only the ifindexes in nm_trace_ifs */
#define F_PROTO (1u << 1)
#define F_HOST4 (1u << 2)
#define F_HOST6 (1u << 3)
#define F_PORT (1u << 4)
#define F_DROPS (1u << 5) /* emit only hops that return TC_ACT_SHOT */

struct config {
	__u32 flags;
	__u8 proto;
	__u8 pad[1];
	__be16 port;
	__u8 host[16];
	__u64 rate;  /* events per second per CPU; 0: unlimited */
	__u64 burst; /* bucket size */
};

struct pkt {
	__u64 skb;
	__u32 ifindex;
	__u32 len;
	__u8 family; /* 4, 6, or 0: not IP */
	__u8 proto;
	__be16 sport;
	__be16 dport;
	__u8 matched;
	__u8 rewritten; /* fexit: the program changed the addresses or ports and returned next */
	__u8 saddr[16];
	__u8 daddr[16];
};

struct event {
	__u64 ktime;
	__u64 cookie;
	__s32 verdict;
	__u32 cpu;
	__u32 reason; /* nm_drop's reason code, 0: none */
	__u32 detail;
	struct pkt pkt;
};

struct bucket {
	__u64 tokens; /* in nanoseconds' worth of events: tokens * 1e9 / rate */
	__u64 last;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} nm_trace_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} nm_trace_ifs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pkt);
} nm_trace_cur SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bucket);
} nm_trace_bucket SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nm_trace_lost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} nm_trace_events SEC(".maps");

static __always_inline void parse(struct sk_buff *skb, struct pkt *p)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__be16 proto = BPF_CORE_READ(skb, protocol);
	unsigned char *l4 = 0;
	__u8 b[40];

	p->family = 0;
	p->proto = 0;
	p->sport = 0;
	p->dport = 0;
	__builtin_memset(p->saddr, 0, sizeof(p->saddr));
	__builtin_memset(p->daddr, 0, sizeof(p->daddr));
	if (proto == ETH_P_IP_BE) {
		if (bpf_probe_read_kernel(b, 20, head + nh))
			return;
		p->family = 4;
		p->proto = b[9];
		__builtin_memcpy(p->saddr, &b[12], 4);
		__builtin_memcpy(p->daddr, &b[16], 4);
		if ((b[6] & 0x3f) == 0 && b[7] == 0) /* first fragment only */
			l4 = head + nh + (b[0] & 0x0f) * 4;
	} else if (proto == ETH_P_IPV6_BE) {
		if (bpf_probe_read_kernel(b, 40, head + nh))
			return;
		p->family = 6;
		p->proto = b[6]; /* extension headers are not followed */
		__builtin_memcpy(p->saddr, &b[8], 16);
		__builtin_memcpy(p->daddr, &b[24], 16);
		l4 = head + nh + 40;
	}
	if (l4 && (p->proto == 6 || p->proto == 17 || p->proto == 132)) {
		__be16 ports[2];
		if (!bpf_probe_read_kernel(ports, sizeof(ports), l4)) {
			p->sport = ports[0];
			p->dport = ports[1];
		}
	}
}

static __always_inline int addr_eq(const __u8 *a, const __u8 *b, int n)
{
	for (int i = 0; i < 16; i++) {
		if (i < n && a[i] != b[i])
			return 0;
	}
	return 1;
}

static __always_inline int match(const struct config *c, const struct pkt *p)
{
	if (c->flags & F_IFINDEX) {
		__u32 k = p->ifindex;
		if (!bpf_map_lookup_elem(&nm_trace_ifs, &k))
			return 0;
	}
	if ((c->flags & F_PROTO) && p->proto != c->proto)
		return 0;
	if (c->flags & F_HOST4) {
		if (p->family != 4 || !(addr_eq(p->saddr, c->host, 4) || addr_eq(p->daddr, c->host, 4)))
			return 0;
	}
	if (c->flags & F_HOST6) {
		if (p->family != 6 || !(addr_eq(p->saddr, c->host, 16) || addr_eq(p->daddr, c->host, 16)))
			return 0;
	}
	if ((c->flags & F_PORT) && p->sport != c->port && p->dport != c->port)
		return 0;
	return 1;
}

SEC("fentry/nm_ingress")
int BPF_PROG(nm_trace_entry, struct sk_buff *skb)
{
	__u32 zero = 0;
	struct config *c = bpf_map_lookup_elem(&nm_trace_config, &zero);
	struct pkt *p = bpf_map_lookup_elem(&nm_trace_cur, &zero);
	struct net_device *dev;
	__u64 prev;
	__u32 previf;
	__u8 keep;

	if (!c || !p)
		return 0;
	prev = p->skb;
	previf = p->ifindex;
	keep = p->matched && p->rewritten;
	p->rewritten = 0;
	p->skb = (__u64)skb;
	dev = BPF_CORE_READ(skb, dev);
	p->ifindex = dev ? BPF_CORE_READ(dev, ifindex) : 0;
	p->len = BPF_CORE_READ(skb, len);
	parse(skb, p);
	p->matched = match(c, p) || (keep && prev == p->skb && previf == p->ifindex);
	return 0;
}

/* take says whether the per-CPU token bucket has an event's worth left. */
static __always_inline int take(const struct config *c)
{
	__u32 zero = 0;
	struct bucket *b;
	__u64 now, cost, cap;

	if (!c->rate)
		return 1;
	b = bpf_map_lookup_elem(&nm_trace_bucket, &zero);
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
		__u64 *lost = bpf_map_lookup_elem(&nm_trace_lost, &zero);
		if (lost)
			*lost += 1;
		return 0;
	}
	b->tokens -= cost;
	return 1;
}

SEC("fexit/nm_ingress")
int BPF_PROG(nm_trace_exit, struct sk_buff *skb, int ret)
{
	__u32 zero = 0;
	struct config *c = bpf_map_lookup_elem(&nm_trace_config, &zero);
	struct pkt *p = bpf_map_lookup_elem(&nm_trace_cur, &zero);
	struct event *e;

	if (!c || !p || p->skb != (__u64)skb || !p->matched)
		return 0;
	if (ret == -1) {
		struct pkt after = {};
		parse(skb, &after);
		p->rewritten = after.sport != p->sport || after.dport != p->dport ||
			       !addr_eq(after.saddr, p->saddr, 16) || !addr_eq(after.daddr, p->daddr, 16);
	}
	if ((c->flags & F_DROPS) && ret != TC_ACT_SHOT_)
		return 0;
	if (!take(c))
		return 0;
	e = bpf_ringbuf_reserve(&nm_trace_events, sizeof(*e), 0);
	if (!e) {
		__u64 *lost = bpf_map_lookup_elem(&nm_trace_lost, &zero);
		if (lost)
			*lost += 1;
		return 0;
	}
	e->ktime = bpf_ktime_get_ns();
	e->cookie = bpf_get_attach_cookie(ctx);
	e->verdict = ret;
	e->cpu = bpf_get_smp_processor_id();
	e->reason = 0;
	e->detail = 0;
	if (ret == TC_ACT_SHOT_) {
		__u32 cb[5] = {};
		unsigned long off = bpf_core_field_offset(struct qdisc_skb_cb, data);
		bpf_probe_read_kernel(cb, sizeof(cb), (void *)skb->cb + off);
		if ((cb[3] & NM_REASON_MASK_) == NM_REASON_MAGIC_) {
			e->reason = cb[3] & ~NM_REASON_MASK_;
			e->detail = cb[4];
		}
	}
	__builtin_memcpy(&e->pkt, p, sizeof(*p));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
