/* Exercises the shared headers: parses a frame and records what it found. */
#include "parse.h"
#include "csum.h"
#include "verdicts.h"

struct result {
	__s32 l3;         /* parse_eth's return */
	__s32 l4;         /* parse_ipv4/parse_ipv6's return */
	__s32 l4_status;  /* parse_tcp/udp/icmp's return, -2 if not reached */
	__u32 l4_off;     /* cursor offset after L3 */
	__u32 payload_off;/* cursor offset after L4 */
	__u16 sport;
	__u16 dport;
	__u16 ip_csum;    /* ipv4_csum over the header with check zeroed, 0 for IPv6 */
	__u16 ip_check;   /* the header's check field as received */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct result);
} results SEC(".maps");

NM_PROG int parse(struct __sk_buff *skb)
{
	struct cursor c;
	struct result r = {.l3 = -2, .l4 = -2, .l4_status = -2};
	struct ethhdr *eth;
	struct iphdr *ip;
	struct ipv6hdr *ip6;
	__u32 zero = 0;

	cursor_init(&c, skb);
	void *data = c.pos;
	r.l3 = parse_eth(&c, &eth);
	if (r.l3 == ETH_P_IP) {
		r.l4 = parse_ipv4(&c, &ip);
		if (r.l4 >= 0) {
			r.ip_check = ip->check;
			__u16 saved = ip->check;
			ip->check = 0;
			r.ip_csum = ipv4_csum(ip, c.end);
			ip->check = saved;
		}
	} else if (r.l3 == ETH_P_IPV6) {
		r.l4 = parse_ipv6(&c, &ip6);
	}
	r.l4_off = c.pos - data;
	if (r.l4 == IPPROTO_TCP) {
		struct tcphdr *t;
		r.l4_status = parse_tcp(&c, &t);
		if (!r.l4_status) {
			r.sport = bpf_ntohs(t->source);
			r.dport = bpf_ntohs(t->dest);
		}
	} else if (r.l4 == IPPROTO_UDP) {
		struct udphdr *u;
		r.l4_status = parse_udp(&c, &u);
		if (!r.l4_status) {
			r.sport = bpf_ntohs(u->source);
			r.dport = bpf_ntohs(u->dest);
		}
	} else if (r.l4 == IPPROTO_ICMP) {
		struct nm_icmphdr *i;
		r.l4_status = parse_icmp(&c, &i);
	} else if (r.l4 == IPPROTO_ICMPV6) {
		struct icmp6hdr *i;
		r.l4_status = parse_icmp6(&c, &i);
	}
	r.payload_off = c.pos - data;
	bpf_map_update_elem(&results, &zero, &r, BPF_ANY);
	return NM_NEXT;
}

/* rewrite sets an IPv4 destination to 10.99.0.1, fixing the header checksum
 * incrementally with csum_replace4. */
NM_PROG int rewrite(struct __sk_buff *skb)
{
	struct cursor c;
	struct ethhdr *eth;
	struct iphdr *ip;

	cursor_init(&c, skb);
	if (parse_eth(&c, &eth) != ETH_P_IP || parse_ipv4(&c, &ip) < 0)
		return NM_DROP;
	__be32 to = bpf_htonl(0x0a630001);
	ip->check = csum_replace4(ip->check, ip->daddr, to);
	ip->daddr = to;
	return NM_ACCEPT;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
