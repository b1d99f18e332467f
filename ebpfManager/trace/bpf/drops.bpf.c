/* The eBPF Manager's drop monitor (issue 23): one program on the kfree_skb
 * tracepoint (tp_btf: a raw tracepoint, no BPF trampoline), attached only
 * while GET /ebpf/drops runs. It fires only when the kernel frees a packet
 * as dropped, so the pass path costs nothing and a drop pays one short run.
 *
 * A drop by one of our modules is known by the control block bpf/reasons.h's
 * nm_drop leaves: cb[3] = NM_REASON_MAGIC | reason, cb[4] = detail, cb[2] =
 * the instance id. A drop without the magic is reported only when the
 * kernel's drop reason is SKB_DROP_REASON_TC_INGRESS or _TC_EGRESS (a TC
 * program returned TC_ACT_SHOT: a chain program that did not use nm_drop,
 * or another agent's), as an unattributed chain drop (instance 0); the
 * enum values are read from the running kernel (CO-RE), and a kernel that
 * does not have them gets no such reports. The same reasons give the hook
 * (ingress or egress); any other reason leaves it unknown.
 *
 * Output is bounded by the filter (evaluated here) and by a per-CPU token
 * bucket; events the bucket refuses are counted in nm_drop_lost. Events are
 * submitted without waking the reader, which polls. */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP_BE (0x0008)   /* htons(0x0800) */
#define ETH_P_IPV6_BE (0xdd86) /* htons(0x86dd) */
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

/* The values are the running kernel's (bpf_core_enum_value). */
enum skb_drop_reason {
	SKB_DROP_REASON_TC_INGRESS = 0,
	SKB_DROP_REASON_TC_EGRESS = 1,
};

/* Filter flags (struct config.flags). */
#define F_IFINDEX (1u << 0) /* only the ifindexes in nm_drop_ifs */
#define F_PROTO (1u << 1)
#define F_HOST4 (1u << 2)
#define F_HOST6 (1u << 3)
#define F_PORT (1u << 4)
#define F_HOOK (1u << 5) /* only the hooks nm_drop_ifs (else config.hooks) allows */
#define F_PACKET (F_PROTO | F_HOST4 | F_HOST6 | F_PORT)

/* Hooks (struct event.hook, the masks in nm_drop_ifs and config.hooks). */
#define HOOK_UNKNOWN (0)
#define HOOK_INGRESS (1)
#define HOOK_EGRESS (2)

struct config {
	__u32 flags;
	__u8 proto;
	__u8 hooks; /* F_HOOK: mask (1 << hook) for an interface not in nm_drop_ifs */
	__be16 port;
	__u8 host[16];
	__u64 rate;  /* events per second per CPU; 0: unlimited */
	__u64 burst; /* bucket size */
};

struct event {
	__u64 ktime;
	__u32 cpu;
	__u32 instance; /* nm_instance of the dropping program, 0: unattributed */
	__u32 reason;   /* nm_drop's reason code, 0: none */
	__u32 detail;
	__u32 ifindex;
	__u32 len;
	__u8 hook;
	__u8 family; /* 4, 6, or 0: not IP */
	__u8 proto;
	__u8 pad;
	__be16 sport;
	__be16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
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
} nm_drop_config SEC(".maps");

/* ifindex -> mask of the hooks followed there (1 << hook). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} nm_drop_ifs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bucket);
} nm_drop_bucket SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nm_drop_lost SEC(".maps");

/* The event being built (too big for the stack with the parser's buffer). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} nm_drop_cur SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} nm_drop_events SEC(".maps");

static __always_inline void parse(struct sk_buff *skb, struct event *p)
{
	unsigned char *head = skb->head;
	__u16 nh = skb->network_header;
	__be16 proto = skb->protocol;
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

/* where says whether the interface and hook pass the filter. */
static __always_inline int where(const struct config *c, __u32 ifindex, __u8 hook)
{
	__u8 mask = 0xff, *m;

	if (!(c->flags & (F_IFINDEX | F_HOOK)))
		return 1;
	m = bpf_map_lookup_elem(&nm_drop_ifs, &ifindex);
	if (m)
		mask = *m;
	else if (c->flags & F_IFINDEX)
		return 0;
	else
		mask = c->hooks;
	return !(c->flags & F_HOOK) || (mask & (1u << hook));
}

static __always_inline int match(const struct config *c, const struct event *p)
{
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

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *lost = bpf_map_lookup_elem(&nm_drop_lost, &zero);

	if (lost)
		*lost += 1;
}

/* take says whether the per-CPU token bucket has an event's worth left. */
static __always_inline int take(const struct config *c)
{
	__u32 zero = 0;
	struct bucket *b;
	__u64 now, cost, cap;

	if (!c->rate)
		return 1;
	b = bpf_map_lookup_elem(&nm_drop_bucket, &zero);
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
		count_lost();
		return 0;
	}
	b->tokens -= cost;
	return 1;
}

/* hook_of is the hook a drop reason names (HOOK_UNKNOWN for any other). */
static __always_inline __u8 hook_of(__u32 reason)
{
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_TC_INGRESS) &&
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_TC_INGRESS))
		return HOOK_INGRESS;
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_TC_EGRESS) &&
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_TC_EGRESS))
		return HOOK_EGRESS;
	return HOOK_UNKNOWN;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(nm_drop_monitor, struct sk_buff *skb, void *location, unsigned int reason)
{
	/* skb is a BTF pointer (tp_btf): its fields are read directly, without
	 * bpf_probe_read_kernel; __sk_buff cb[i] is qdisc_skb_cb data[4 * i]. */
	unsigned long off = bpf_core_field_offset(struct qdisc_skb_cb, data);
	__u32 magic = *(__u32 *)&skb->cb[off + 4 * 3];
	__u32 zero = 0;
	struct config *c;
	struct net_device *dev;
	struct event *e, *p;
	__u8 hook;
	int ours;

	ours = (magic & NM_REASON_MASK_) == NM_REASON_MAGIC_;
	hook = hook_of(reason);
	if (!ours && hook == HOOK_UNKNOWN)
		return 0; /* not a chain's drop: the common case, and the cheapest */
	c = bpf_map_lookup_elem(&nm_drop_config, &zero);
	p = bpf_map_lookup_elem(&nm_drop_cur, &zero);
	if (!c || !p)
		return 0;
	dev = skb->dev;
	p->ifindex = dev ? dev->ifindex : 0;
	p->hook = hook;
	if (!where(c, p->ifindex, hook))
		return 0;
	if (!(c->flags & F_PACKET)) {
		/* Nothing to match in the packet: a drop over the rate is
		 * refused before the packet is read, the flood's cheap path. */
		if (!take(c))
			return 0;
		parse(skb, p);
	} else {
		parse(skb, p);
		if (!match(c, p) || !take(c))
			return 0;
	}
	p->len = skb->len;
	p->instance = 0;
	p->reason = 0;
	p->detail = 0;
	if (ours) {
		p->instance = *(__u32 *)&skb->cb[off + 4 * 2];
		p->reason = magic & ~NM_REASON_MASK_;
		p->detail = *(__u32 *)&skb->cb[off + 4 * 4];
	}
	p->ktime = bpf_ktime_get_ns();
	p->cpu = bpf_get_smp_processor_id();
	e = bpf_ringbuf_reserve(&nm_drop_events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	__builtin_memcpy(e, p, sizeof(*p));
	/* No wakeup: the reader polls (every 100 ms, GET /ebpf/drops), so a
	 * flood does not wake it per drop. */
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}
