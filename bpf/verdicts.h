/* Chain verdicts shared by every data plane (DESIGN §4.3).
 *
 * A module that has no opinion about a packet returns NM_NEXT, never NM_ACCEPT:
 * under TCX only TC_ACT_UNSPEC (-1) continues to the next program, and under
 * legacy cls_bpf it does too; every other verdict ends the chain. */
#pragma once

#include <linux/pkt_cls.h>

/* The TCX names are missing from the 6.1 uapi headers installed here. */
#ifndef TCX_NEXT
#define TCX_NEXT (-1)
#define TCX_PASS (0)
#define TCX_DROP (2)
#define TCX_REDIRECT (7)
#endif

#define NM_NEXT (TC_ACT_UNSPEC)       /* no opinion: run the next module in the chain */
#define NM_ACCEPT (TC_ACT_OK)         /* accept the packet and end the chain */
#define NM_DROP (TC_ACT_SHOT)         /* drop the packet */
#define NM_REDIRECT (TC_ACT_REDIRECT) /* the program redirected the packet */

/* Section and entry-point names the eBPF Manager looks for in a module's .o:
 * NM_INGRESS runs on the interface's TC ingress hook (on a service's host veth:
 * traffic leaving the service), NM_EGRESS on its TC egress hook (traffic going
 * to the service). */
#define NM_PROG SEC("tc")
