/* Returns next and does nothing: the floor of BenchmarkHop. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "verdicts.h"

char LICENSE[] SEC("license") = "GPL";

NM_PROG int nm_ingress(struct __sk_buff *skb)
{
	return NM_NEXT;
}
