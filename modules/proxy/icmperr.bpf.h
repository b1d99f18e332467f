/* proxy: ICMP and ICMPv6 errors about translated flows — what the IPv4 and
 * IPv6 paths share (their px_icmp_error4/6 are in v4.bpf.h, v6.bpf.h).
 *
 * An error travelling from instance W back to client C (outer: W's namespace
 * IP -> C's instance IP) quotes the packet C's flow arrived at W as (C's
 * instance IP -> W's namespace IP). The session of the direction the error
 * travels in — the reverse of the quoted flow — says what C knows the flow
 * as: the outer destination becomes C's namespace IP (the session's new_dst),
 * the outer source, when it is the quoted destination (not a router), the
 * service IP (new_src), and the quoted packet is restored to what C sent:
 * source new_dst, destination new_src. The same holds the other way round (an
 * error from C about W's replies). As node-net-manager/proxy/icmperr.go does it.
 *
 * Reached only from the ICMP / ICMPv6 non-echo branch, as a global function:
 * the verifier checks it once on its own (it reparses the frame from skb), so
 * neither the hit path's code nor its verification grows with it.
 *
 * Checksums. The outer IPv4 header checksum is never offloaded, and the
 * quoted packet is payload to the skb: their fields (the quoted IPv4 header
 * checksum and the quoted L4 checksum, updated as a complete checksum, as the
 * user-space proxy does) are written in place, RFC 1624. (A quote of a packet
 * that was CHECKSUM_PARTIAL, as a service's TCP and UDP on a veth are, holds
 * the pseudo-header sum rather than a checksum, and comes out not quite as it
 * was sent; no stack checks a quoted checksum, and the ICMP checksum takes in
 * whatever the field's change was.) The one checksum the
 * skb's ip_summed is about is the ICMP / ICMPv6 one; it goes through
 * bpf_l4_csum_replace, whose arithmetic is the kernel's for every ip_summed:
 * the message's own bytes (quoted packet) without BPF_F_PSEUDO_HDR — a
 * CHECKSUM_PARTIAL field is left alone, as the device sums those bytes itself
 * — and, ICMPv6 only, the outer addresses with it. This path is rare, so the
 * helper's cost does not matter here (unlike on the hit path, where l4_csum
 * reads ip_summed to stay in place), and it needs no kfunc: one code path on
 * every kernel, the one the tests run. CHECKSUM_COMPLETE: every byte written
 * is offset by a checksum field change within the packet (outer IPv4 header
 * by its checksum, quoted bytes by the ICMP checksum, IPv6 outer addresses by
 * the ICMPv6 checksum), so skb->csum stays right untouched — which is what
 * the helper does without BPF_F_PSEUDO_HDR and, for IPv6, with BPF_F_IPV6.
 * A kernel without BPF_F_IPV6 (before 6.16) takes the pseudo-header change
 * out of a CHECKSUM_COMPLETE skb->csum; bpf_csum_update puts it back. */
#pragma once

#include "common.bpf.h"

/* What px_icmp_error4/6 pull into the linear area before parsing: Ethernet
 * with two VLAN tags, the outer IP header (IPv4 up to 60 bytes), ICMP, the
 * quoted IP header and the quoted L4 checksum (TCP: 18 bytes). */
#define PX_ICMP_PULL (14 + 8 + 60 + 8 + 60 + 18)

/* ICMPv4 error types (linux/icmp.h is not used here) */
#ifndef ICMP_PARAMETERPROB
#define ICMP_PARAMETERPROB (12)
#endif

/* the quoted packet's L4 header: its flow's ports and its checksum field */
struct quote {
	__be16 sport;
	__be16 dport;
	__u16 *ck;  /* the quoted L4 checksum if it is quoted and covers the addresses, else NULL */
	int mmzero; /* UDP: a 0 checksum is "none" and stays */
};

/* parse_quote reads the quoted L4 header at l4 (the caller made sure 8 bytes
 * of it are quoted and in the frame): TCP, UDP or an echo, as parse_l4 does.
 * avail is how many of its bytes the error quotes: TCP's checksum, at 16, may
 * be missing from a quote of 8. */
static __always_inline int parse_quote(void *l4, void *end, __u8 proto, int v6, __u32 avail, struct quote *o)
{
	if (l4 + 8 > end)
		return PX_L4_MALFORMED;
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		o->sport = ((__be16 *)l4)[0];
		o->dport = ((__be16 *)l4)[1];
		if (proto == IPPROTO_UDP) {
			o->ck = l4 + 6;
			o->mmzero = 1;
		} else if (avail >= 18) {
			if (l4 + 18 > end)
				return PX_L4_MALFORMED;
			o->ck = l4 + 16;
		}
		return PX_L4_OK;
	}
	__u8 type = *(__u8 *)l4;
	if ((proto == IPPROTO_ICMP && !v6 && (type == ICMP_ECHO || type == ICMP_ECHOREPLY)) ||
	    (proto == IPPROTO_ICMPV6 && v6 && (type == ICMPV6_ECHO_REQUEST || type == ICMPV6_ECHO_REPLY))) {
		o->sport = o->dport = ((__be16 *)l4)[2]; /* the identifier */
		if (v6)
			o->ck = l4 + 2; /* ICMPv6 covers the pseudo-header; ICMPv4 does not */
		return PX_L4_OK;
	}
	return PX_L4_PASS;
}

/* quote_csum updates the quoted L4 checksum for an address change of diff (a
 * complete checksum: the quote is payload) and returns the change of the
 * field's bytes, which the ICMP checksum must take in. */
static __always_inline __u32 quote_csum(struct quote *q, __u32 diff)
{
	if (!q->ck)
		return 0;
	__u16 old = *q->ck;
	__u16 neu = csum_update(old, diff, 0, q->mmzero);
	*q->ck = neu;
	return csum_add32(~(__u32)old, neu);
}

/* icmp_csum applies to the ICMP / ICMPv6 checksum at off (from the frame's
 * start) the change msg of the message's bytes and, ICMPv6, pseudo of the
 * pseudo-header (see above). Call it last: the helper invalidates packet
 * pointers. */
static __always_inline int icmp_csum(struct __sk_buff *skb, __u32 off, __u32 msg, __u32 pseudo, int v6)
{
	if (msg && bpf_l4_csum_replace(skb, off, 0, msg, 0))
		return -1;
	if (!v6 || !pseudo)
		return 0;
	long r = bpf_l4_csum_replace(skb, off, 0, pseudo, BPF_F_PSEUDO_HDR | BPF_F_IPV6);
	if (r == -PX_EINVAL) {
		r = bpf_l4_csum_replace(skb, off, 0, pseudo, BPF_F_PSEUDO_HDR);
		if (!r)
			bpf_csum_update(skb, pseudo); /* CHECKSUM_COMPLETE only; else a no-op */
	}
	return r ? -1 : 0;
}
