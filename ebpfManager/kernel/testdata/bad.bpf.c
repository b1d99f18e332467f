/* A data plane the verifier must reject: it reads packet data without a bounds check. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc") int nm_ingress(struct __sk_buff *skb)
{
	unsigned char *data = (unsigned char *)(long)skb->data;
	return data[100];
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
