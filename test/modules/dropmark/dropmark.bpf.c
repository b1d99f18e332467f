//go:build ignore

/* dropmark: a test-only module that drops IPv4 packets carrying a marked ToS
 * byte (ping -Q) and passes everything else on to the next module. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "parse.h"
#include "verdicts.h"
#include "dropmark.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dm_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

static __always_inline int judge(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct dm_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->tos)
		return NM_NEXT;
	struct cursor c;
	struct ethhdr *eth;
	struct iphdr *ip;
	cursor_init(&c, skb);
	if (parse_eth(&c, &eth) != ETH_P_IP || parse_ipv4(&c, &ip) < 0)
		return NM_NEXT;
	if (ip->tos != cfg->tos)
		return NM_NEXT;
	__u64 *n = bpf_map_lookup_elem(&dropped, &zero);
	if (n)
		(*n)++;
	return NM_DROP;
}

NM_PROG int nm_ingress(struct __sk_buff *skb)
{
	return judge(skb);
}

NM_PROG int nm_egress(struct __sk_buff *skb)
{
	return judge(skb);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
