//go:build ignore

/* packetcounter: counts packets and bytes per interface and TC hook, and
 * always passes the packet on to the next module. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "verdicts.h"
#include "packetcounter.h"

/* max_entries is a load-time knob (MapSizes in main.go). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct pc_key);
	__type(value, struct pc_value);
} counts SEC(".maps");

static __always_inline int count(struct __sk_buff *skb, __u32 hook)
{
	struct pc_key key = {.ifindex = skb->ifindex, .hook = hook};
	struct pc_value *v = bpf_map_lookup_elem(&counts, &key);
	if (!v) {
		struct pc_value zero = {};
		/* BPF_NOEXIST: another CPU may have created it meanwhile; a full
		 * map is not an error for the packet. */
		bpf_map_update_elem(&counts, &key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&counts, &key);
		if (!v)
			return NM_NEXT;
	}
	v->packets++;
	v->bytes += skb->len;
	return NM_NEXT;
}

NM_PROG int nm_ingress(struct __sk_buff *skb)
{
	return count(skb, 0);
}

NM_PROG int nm_egress(struct __sk_buff *skb)
{
	return count(skb, 1);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
