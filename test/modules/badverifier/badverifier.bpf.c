//go:build ignore

/* badverifier: a test-only data plane the verifier rejects (it reads packet
 * data without a bounds check). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "verdicts.h"

NM_PROG int nm_ingress(struct __sk_buff *skb)
{
	unsigned char *data = (unsigned char *)(long)skb->data;
	return data[100] ? NM_NEXT : NM_DROP;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
