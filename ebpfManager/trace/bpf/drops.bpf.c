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
#include "common.bpf.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

/* The values are the running kernel's (bpf_core_enum_value). */
enum skb_drop_reason {
	SKB_DROP_REASON_TC_INGRESS = 0,
	SKB_DROP_REASON_TC_EGRESS = 1,
};

/* The filter's own flag (struct config.flags; the others are common.bpf.h's). */
#define F_HOOK (1u << 5) /* only the hooks nm_drop_ifs (else config.hooks) allows */
#define F_OURS (1u << 6) /* only nm_drop_instances' drops, and unattributed ones on nm_drop_ifs' interfaces */

/* Hooks (struct event.hook, the masks in nm_drop_ifs and config.hooks). */
#define HOOK_UNKNOWN (0)
#define HOOK_INGRESS (1)
#define HOOK_EGRESS (2)

struct event {
	__u64 ktime;
	__u32 cpu;
	__u32 instance; /* nm_instance of the dropping program, 0: unattributed */
	__u32 reason;   /* nm_drop's reason code, 0: none */
	__u32 detail;
	__u32 ifindex;
	__u32 len;
	__u8 hook;
	__u8 pad;
	struct flow flow;
};

NM_ONE(BPF_MAP_TYPE_ARRAY, nm_drop_config, struct config);
NM_ONE(BPF_MAP_TYPE_PERCPU_ARRAY, nm_drop_bucket, struct bucket);
NM_ONE(BPF_MAP_TYPE_PERCPU_ARRAY, nm_drop_lost, __u64);
/* The event being built (too big for the stack with the parser's buffer). */
NM_ONE(BPF_MAP_TYPE_PERCPU_ARRAY, nm_drop_cur, struct event);

/* ifindex -> mask of the hooks followed there (1 << hook). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} nm_drop_ifs SEC(".maps");

/* The instances whose drops are reported under F_OURS (nm_instance -> 1):
 * the tracepoint sees every drop of the host, those of data planes another
 * process loaded (with nm_instance 0 or its own numbers) included. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} nm_drop_instances SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} nm_drop_events SEC(".maps");

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

/* mine says whether a drop is ours under F_OURS: marked by one of our
 * instances, or unattributed on one of our interfaces. */
static __always_inline int mine(int marked, __u32 instance, __u32 ifindex)
{
	if (marked)
		return bpf_map_lookup_elem(&nm_drop_instances, &instance) != NULL;
	return bpf_map_lookup_elem(&nm_drop_ifs, &ifindex) != NULL;
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
	if ((c->flags & F_OURS) && !mine(ours, *(__u32 *)&skb->cb[off + 4 * 2], p->ifindex))
		return 0; /* before the bucket: another's drops take none of ours */
	if (!where(c, p->ifindex, hook))
		return 0;
	if (!(c->flags & F_PACKET)) {
		/* Nothing to match in the packet: a drop over the rate is
		 * refused before the packet is read, the flood's cheap path. */
		if (!take(c, &nm_drop_bucket, &nm_drop_lost))
			return 0;
		parse_flow(skb->head + skb->network_header, skb->protocol, &p->flow);
	} else {
		parse_flow(skb->head + skb->network_header, skb->protocol, &p->flow);
		if (!match_flow(c, &p->flow) || !take(c, &nm_drop_bucket, &nm_drop_lost))
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
		count_lost(&nm_drop_lost);
		return 0;
	}
	__builtin_memcpy(e, p, sizeof(*p));
	/* No wakeup: the reader polls (every 100 ms, GET /ebpf/drops), so a
	 * flood does not wake it per drop. */
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}
