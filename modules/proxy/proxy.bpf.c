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
 * A flow to an instance on another node is tunnelled there in the
 * user-space tunnel's wire format, and the tunnel's datagrams from peers are
 * decapsulated on the underlay and delivered here (tunnel.bpf.h).
 *
 * common.bpf.h: config, stats, checksums, L4 ports; miss.bpf.h: miss events;
 * tunnel.bpf.h: the inter-node tunnel; v4.bpf.h, v6.bpf.h: each family's
 * tables, translation and decapsulation; icmperr.bpf.h: what their ICMP
 * error translations share. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "parse.h"
#include "verdicts.h"
#include "reasons.h"
#include "proxy.h"
#include "common.bpf.h"
#include "v4.bpf.h"
#include "v6.bpf.h"

/* tunnel_in takes a datagram on the underlay: one of the inter-node tunnel
 * to this node from a peer is decapsulated by its inner family; anything
 * else goes on to the stack (and the user-space tunnel), RTT probes too. */
static __always_inline int tunnel_in(struct __sk_buff *skb, const struct px_config *cfg)
{
	int inner = udp4_tunnel_inner(skb, cfg->tunnel_port);
	if (inner < 0)
		return NM_NEXT;
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end || ip->daddr != cfg->node_ip)
		return NM_NEXT;
	struct tunnel_from tf = {.node = ip->saddr, .port = udp->source};
	tf.peer = bpf_map_lookup_elem(&peers, &tf.node);
	if (!tf.peer) {
		count(PX_DECAP_UNKNOWN_PEER);
		return NM_NEXT;
	}
	return inner ? decap6(skb, cfg, &tf) : decap4(skb, cfg, &tf);
}

/* TC ingress. On a service's host veth: traffic leaving the service; on the
 * underlay (a host interface): traffic from other nodes. */
NM_PROG int nm_ingress(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct px_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return NM_NEXT;
	if (cfg->ul_ifindex && skb->ifindex == cfg->ul_ifindex)
		return tunnel_in(skb, cfg);
	struct cursor c;
	struct ethhdr *eth;
	cursor_init(&c, skb);
	void *data = c.pos;
	int proto = parse_eth(&c, &eth);
	if (proto == ETH_P_IP)
		return handle4(skb, &c, data, eth, cfg);
	if (proto == ETH_P_IPV6)
		return handle6(skb, &c, data, eth, cfg);
	return NM_NEXT;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
