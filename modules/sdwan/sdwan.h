/* Maps of the sdwan data plane. Go mirrors every struct here in maps.go
 * (TestStructsMatchC checks sizes and offsets against this file's BTF).
 *
 * Uplink (LAN ingress): a packet's flow (family, protocol, ToS, addresses,
 * ports) is looked up in the flow cache. A miss, or an entry from before the
 * last rule or LBR change (epoch), classifies the packet against the PDRs:
 * every rule has a slot 0..255, and each field is looked up once (source and
 * destination prefix in LPM tries, protocol, ToS, source and destination
 * port in arrays), each lookup giving the bit set of the slots that field
 * allows, ORed with the slots that leave the field open. The AND of those
 * sets, restricted to the enabled slots, holds every matching PDR; the one
 * with the lowest precedence value wins. Its FAR (pass, drop, redirect to a
 * WAN overlay, to the LBR of the packet's ToS class, or to the LAN) is cached
 * with the chosen WAN, so a flow sticks to its WAN until that WAN goes down.
 *
 * Rule sets exist SD_GENS times (sd_ruleset, a ring of generations): the
 * control plane writes a slot's field bits while the slot is disabled, then
 * the next generation (inactive for a grace period), then flips
 * sd_state.gen, so a packet is judged by one whole rule set. Downlink (WAN ingress): GRE from the WAN's peer is decapsulated
 * and sent to the LAN host.
 *
 * Per-CPU caches (rolecache, wannh, nhcache) keep what a packet would
 * otherwise look up in the roles hash or ask bpf_fib_lookup for: each CPU
 * fills its own copy, so no packet reads an entry another CPU is writing.
 * Each entry carries the cache generation (sd_cache.gen) it was filled in;
 * the control plane bumps the generation after every change that can alter
 * an entry (a role or WAN written; any netlink link, address, route, rule,
 * nexthop or neighbour event; a lost event; and every nexthopRefresh), and
 * an entry of another generation is looked up again. A failed lookup is
 * never cached. */
#pragma once

#include <linux/types.h>

#define SD_MAX_WANS (8)
#define SD_GENS (4) /* rule set generations; a power of two */
#define SD_MAX_RULES (256)
#define SD_WORDS (SD_MAX_RULES / 64)
#define SD_LBR_SLOTS (128)
#define SD_CLASSES (64)              /* DSCP values: ToS >> 2 */
#define SD_CLASS_DEFAULT (SD_CLASSES) /* the LBR of classes without their own */
#define SD_PORTS (65536)
#define SD_ROLE_SLOTS (64) /* rolecache entries per CPU; a power of two */

/* interface roles */
#define SD_ROLE_LAN (1)
#define SD_ROLE_WAN (2)

/* FAR actions */
#define SD_PASS (1)
#define SD_DROP (2)
#define SD_REDIRECT (3)

/* FAR redirect targets besides a WAN index 0..SD_MAX_WANS-1 */
#define SD_TARGET_LAN (0xfe)
#define SD_TARGET_LBR (0xff)

#define SD_NO_RULE (0xffff)

/* GRE payload type of health probes (IEEE 802 local experimental ethertype) */
#define SD_PROBE_PROTO (0x88b5)
#define SD_PROBE_MAGIC (0x53445750) /* "SDWP" */
#define SD_PROBE_REQUEST (1)
#define SD_PROBE_REPLY (2)

/* sd_wan.tos: copy the inner packet's ToS to the outer header */
#define SD_TOS_INHERIT (0x100)

/* Drop reasons (bpf/reasons.h nm_drop; named in Go by dropReasonNames), one
 * per drop the stats count. Details: SD_REASON_FAR_DROP the matching rule's
 * slot; the WAN ones the WAN's index (wans). */
#define SD_REASON_DEFAULT_DROP (1) /* uplink: no PDR matched, defaultPolicy drop (noMatch) */
#define SD_REASON_FAR_DROP (2)     /* uplink: a FAR said drop (farDrop) */
#define SD_REASON_NO_WAN (3)       /* uplink: no usable WAN for a redirect, defaultPolicy drop (noWan) */
#define SD_REASON_MTU (4)          /* uplink: too big for the WAN once encapsulated (mtuDrop) */
#define SD_REASON_ENCAP_ERROR (5)  /* uplink: the kernel refused the room for the outer header (encapError) */
#define SD_REASON_UNKNOWN_PEER (6) /* downlink: GRE not from the WAN's peer, defaultPolicy drop (unknownPeer) */
#define SD_REASON_MALFORMED (7)    /* downlink: malformed GRE, defaultPolicy drop (malformed) */
#define SD_REASON_DECAP_ERROR (8)  /* downlink: the kernel refused to remove the outer header (decapError) */

/* Counters by reason (stats map index). */
enum sd_stat {
	SD_ST_NO_MATCH,      /* uplink IP packet no PDR matched: default policy */
	SD_ST_FAR_PASS,      /* a FAR said pass */
	SD_ST_FAR_DROP,      /* a FAR said drop */
	SD_ST_TO_LAN,        /* a FAR redirected uplink traffic to the LAN (kernel routing) */
	SD_ST_NO_WAN,        /* no usable WAN for a redirect: default policy */
	SD_ST_FAILOVER,      /* a flow moved off a WAN that is down */
	SD_ST_MTU_DROP,      /* too big for the WAN after encapsulation */
	SD_ST_MSS_CLAMPED,   /* TCP SYN whose MSS was lowered */
	SD_ST_ENCAP_ERROR,   /* the kernel refused the room for the outer header */
	SD_ST_UNKNOWN_PEER,  /* GRE on a WAN not from its peer to its address */
	SD_ST_MALFORMED,     /* GRE with flags, version, unknown payload or truncated */
	SD_ST_DECAP_ERROR,   /* the kernel refused to remove the outer header */
	SD_ST_TO_STACK,      /* decapsulated, handed to the kernel (no neighbour yet, local) */
	SD_ST_PROBE_REFLECTED,
	SD_ST_PROBE_REPLY,   /* a reply to our probe, passed to the control plane's socket */
	SD_ST_CLASSIFIED,    /* flows classified (cache misses and stale entries) */
	SD_ST_NH_LOOKUP,     /* next hops asked of the FIB (next-hop cache misses and stale entries) */
	SD_ST_N,
};

struct sd_bits {
	__u64 w[SD_WORDS];
};

struct sd_state {
	__u32 gen;          /* active rule set generation, 0 to SD_GENS - 1 */
	__u32 epoch;        /* flow cache entries of another epoch are stale */
	__u32 default_drop; /* unmatched uplink, unknown peers, malformed GRE: drop (else pass) */
	__u32 pad;
};

struct sd_role {
	__u32 role; /* SD_ROLE_* */
	__u32 wan;  /* WAN index for SD_ROLE_WAN */
};

struct sd_wan {
	__u32 ifindex;
	__u32 up;        /* probes say it works */
	__be32 local;    /* outer source: this gateway's address on the WAN */
	__be32 peer;     /* outer destination: the peer gateway's address on it */
	__be32 nexthop;  /* neighbour the packets go to (the peer unless routed) */
	__u32 mtu;       /* the WAN interface's MTU */
	__u32 tos;       /* outer ToS, or SD_TOS_INHERIT */
	__u32 csum_base; /* outer4_csum_base(local, peer, ttl) */
	__u32 ttl;
	__u32 pad;
};

struct sd_rule {
	__u32 precedence; /* lower wins */
	__u8 action;      /* SD_PASS, SD_DROP, SD_REDIRECT */
	__u8 target;      /* WAN index, SD_TARGET_LAN or SD_TARGET_LBR */
	__u16 pad;
};

struct sd_ruleset {
	struct sd_bits enabled;
	/* slots that leave a field open */
	struct sd_bits any_src4, any_dst4, any_src6, any_dst6;
	struct sd_bits any_proto, any_tos, any_sport, any_dport;
	struct sd_rule rule[SD_MAX_RULES];
};

struct sd_lpm4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct sd_lpm6 {
	__u32 prefixlen;
	__u8 addr[16];
};

struct sd_lbr {
	__u32 nslots; /* 0: no LBR for this class */
	__u8 wan[SD_LBR_SLOTS];
};

struct sd_flow_key {
	__u8 family; /* 4 or 6 */
	__u8 proto;
	__u8 tos;    /* ECN bits cleared */
	__u8 pad;
	__be16 sport;
	__be16 dport;
	__u8 src[16];
	__u8 dst[16];
};

struct sd_flow {
	__u32 epoch;
	__u16 rule;  /* matching slot, SD_NO_RULE */
	__u8 action; /* the FAR's action, or the default policy's */
	__u8 target; /* the FAR's target */
	__u8 wan;    /* chosen WAN for a WAN or LBR target */
	__u8 pad[3];
	__u32 hash;  /* flow hash: the LBR slot */
};

struct sd_wan_stat {
	__u64 tx_packets, tx_bytes; /* encapsulated onto this WAN */
	__u64 rx_packets, rx_bytes; /* decapsulated from it */
};

/* The caches' state, written by the control plane only. */
struct sd_cache {
	__u32 gen;      /* entries filled in another generation are stale */
	__u32 nh_slots; /* nhcache's size (a power of two); 0: do not cache */
};

/* rolecache: the role of the interface whose ifindex has these low bits. */
struct sd_role_slot {
	__u32 ifindex;
	__u32 gen;
	struct sd_role role; /* role 0: none (the packet passes) */
};

/* A next hop as bpf_fib_lookup gave it: where a packet goes, and the MACs
 * it goes with. */
struct sd_nh {
	__u32 gen;     /* sd_cache.gen when it was looked up */
	__u32 ifindex; /* the egress interface; 0: empty */
	__u32 mtu;     /* the route's MTU (downlink) */
	__u8 dmac[6];
	__u8 smac[6];
};

/* What the downlink's FIB lookup reads of a decapsulated packet: the next
 * hop of one (ToS, protocol, source, destination) from one WAN. */
struct sd_nh_key {
	__u8 family; /* 4 or 6 */
	__u8 proto;
	__u8 tos;    /* IPv6: the traffic class */
	__u8 pad;
	__u32 ifindex; /* the WAN it arrived on */
	__u8 src[16];
	__u8 dst[16];
};

/* nhcache: one direct-mapped slot per key hash. */
struct sd_nh_slot {
	struct sd_nh_key key;
	struct sd_nh nh;
};

/* A health probe: the GRE payload after the GRE header. */
struct sd_probe {
	__be32 magic;
	__u8 type; /* SD_PROBE_REQUEST or SD_PROBE_REPLY */
	__u8 wan;  /* the sender's WAN index */
	__u16 pad;
	__be32 seq;
	__u32 pad2;
	__u64 sent; /* sender's clock, opaque to the reflector */
};
