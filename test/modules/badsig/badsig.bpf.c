//go:build ignore

/* badsig: a valid data plane whose control plane has the wrong New. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "verdicts.h"

NM_PROG int nm_ingress(struct __sk_buff *skb)
{
	return NM_NEXT;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
