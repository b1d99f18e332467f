//go:build ignore

/* proxy: Oakestra semantic addressing in the kernel. A packet leaving a
 * service towards a service IP (IPv4 or IPv6) is translated to a local
 * instance's namespace IP (round robin or the instance an instance IP names),
 * its source to the sender's instance IP; the choice is kept per flow in both
 * directions, and the packet goes straight into the target's namespace
 * (bpf_redirect_peer); an ICMP / ICMPv6 error about such a flow is translated
 * back to what the sender of the quoted packet knows. What it cannot translate
 * here (no local instance, unknown sender, not TCP/UDP/ICMP echo or an error
 * about a known flow, IPv6 extension headers) it passes on: the user-space
 * proxy behind the node's route to the service range handles it, so no first
 * packet is lost; a miss in the translation tables is also
 * reported to the control plane (ring buffer), which pushes a translation
 * that should have been there.
 *
 * common.bpf.h: config, stats, checksums, L4 ports; miss.bpf.h: miss events;
 * v4.bpf.h, v6.bpf.h: each family's tables and translation; icmperr.bpf.h:
 * what their ICMP error translations share. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "parse.h"
#include "verdicts.h"
#include "proxy.h"
#include "common.bpf.h"
#include "v4.bpf.h"
#include "v6.bpf.h"

/* On a service's host veth, TC ingress: traffic leaving the service. */
NM_PROG int nm_ingress(struct __sk_buff *skb)
{
	struct cursor c;
	struct ethhdr *eth;
	cursor_init(&c, skb);
	void *data = c.pos;
	int proto = parse_eth(&c, &eth);
	if (proto == ETH_P_IP)
		return handle4(skb, &c, data, eth);
	if (proto == ETH_P_IPV6)
		return handle6(skb, &c, data, eth);
	return NM_NEXT;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
