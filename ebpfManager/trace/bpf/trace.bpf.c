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
#include "common.bpf.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define TC_ACT_SHOT_ (2)

/* The filter's own flag (struct config.flags; the others are common.bpf.h's). */
#define F_DROPS (1u << 5) /* emit only hops that return TC_ACT_SHOT */

struct pkt {
	__u64 skb;
	__u32 ifindex;
	__u32 len;
	struct flow flow;
	__u8 matched;
	__u8 rewritten; /* fexit: the program changed the addresses or ports and returned next */
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

NM_ONE(BPF_MAP_TYPE_ARRAY, nm_trace_config, struct config);
NM_ONE(BPF_MAP_TYPE_PERCPU_ARRAY, nm_trace_cur, struct pkt);
NM_ONE(BPF_MAP_TYPE_PERCPU_ARRAY, nm_trace_bucket, struct bucket);
NM_ONE(BPF_MAP_TYPE_PERCPU_ARRAY, nm_trace_lost, __u64);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} nm_trace_ifs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} nm_trace_events SEC(".maps");

static __always_inline int match(const struct config *c, const struct pkt *p)
{
	if (c->flags & F_IFINDEX) {
		__u32 k = p->ifindex;
		if (!bpf_map_lookup_elem(&nm_trace_ifs, &k))
			return 0;
	}
	return match_flow(c, &p->flow);
}

/* parse reads the packet skb holds (skb is a BTF pointer, read with CO-RE). */
static __always_inline void parse(struct sk_buff *skb, struct flow *f)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);

	parse_flow(head + nh, BPF_CORE_READ(skb, protocol), f);
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
	parse(skb, &p->flow);
	p->matched = match(c, p) || (keep && prev == p->skb && previf == p->ifindex);
	return 0;
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
		struct flow after;
		parse(skb, &after);
		p->rewritten = after.sport != p->flow.sport || after.dport != p->flow.dport ||
			       !addr_eq(after.saddr, p->flow.saddr, 16) || !addr_eq(after.daddr, p->flow.daddr, 16);
	}
	if ((c->flags & F_DROPS) && ret != TC_ACT_SHOT_)
		return 0;
	if (!take(c, &nm_trace_bucket, &nm_trace_lost))
		return 0;
	e = bpf_ringbuf_reserve(&nm_trace_events, sizeof(*e), 0);
	if (!e) {
		count_lost(&nm_trace_lost);
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
