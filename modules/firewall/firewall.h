/* Maps of the firewall data plane. Go mirrors every struct here in tables.go
 * (TestStructsMatchC checks sizes and offsets against this file's BTF).
 *
 * Classification: rules are sorted by priority into indexes 0..n-1, and each
 * packet field is looked up once — source and destination prefix in LPM tries,
 * protocol in an array, source and destination port through a port -> class
 * array and a class -> rule set array, direction in an array. Each lookup
 * yields a bit set of the rules that field allows; the lowest bit of their AND
 * is the first matching rule. The cost does not depend on the rule count,
 * only on the number of 64-bit words in use.
 *
 * Every table exists twice (generation 0 and 1). The control plane fills the
 * inactive generation, then flips fw_state.gen; a packet reads gen once, so it
 * is judged by one whole rule set, never a mix. */
#pragma once

#include <linux/types.h>

#define FW_MAX_RULES (2048)
#define FW_WORDS (FW_MAX_RULES / 64)
#define FW_MAX_CLASSES (2 * FW_MAX_RULES + 2)
#define FW_PORTS (65536)

#define FW_ALLOW (0)
#define FW_DENY (1)

/* Drop reasons (bpf/reasons.h nm_drop; named in Go by dropReasonNames).
 * FW_REASON_RULE's detail is the rule's slot, gen * FW_MAX_RULES + index:
 * the key of rules and hits, which the control plane maps to the rule id. */
#define FW_REASON_RULE (1)         /* a deny rule matched */
#define FW_REASON_DEFAULT_DENY (2) /* no rule matched, defaultPolicy deny */
#define FW_REASON_MALFORMED (3)    /* malformed IP header or truncated L4 header */

/* direction index, from the service's point of view */
#define FW_DIR_INGRESS (0) /* to the service: the host veth's TC egress hook */
#define FW_DIR_EGRESS (1)  /* from the service: the host veth's TC ingress hook */

struct fw_bits {
	__u64 w[FW_WORDS];
};

struct fw_state {
	__u32 gen;           /* active generation, 0 or 1 */
	__u32 words[2];      /* 64-bit words in use per generation */
	__u32 default_deny;  /* policy when no rule matches */
	__u32 stateful;      /* let replies of allowed flows through */
	__u32 version;       /* rule set version: one more after each flip, in a
	                      * write of its own once gen is flipped */
	__u64 flow_timeout;  /* ns a flow entry stays valid without traffic */
};

/* LPM keys: the generation is the first byte of the matched data. */
struct fw_lpm4 {
	__u32 prefixlen; /* 8 + address prefix length */
	__u8 gen;
	__u8 addr[4];
} __attribute__((packed));

struct fw_lpm6 {
	__u32 prefixlen;
	__u8 gen;
	__u8 addr[16];
} __attribute__((packed));

struct fw_rule {
	__u32 action; /* FW_ALLOW or FW_DENY */
};

struct fw_stat_key {
	__u32 ifindex;
	__u32 dir; /* FW_DIR_* */
};

struct fw_stat {
	__u64 allowed;
	__u64 denied;
};

/* A flow as seen on one interface; the stateful table holds the reverse of
 * every allowed packet's flow, with a struct fw_seen. */
struct fw_flow {
	__u32 ifindex;
	__u8 family; /* 4 or 6 */
	__u8 proto;
	__u16 pad;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* ICMP echo: the identifier, both ports */
	__u16 dport;
};

#define FW_SLOT_NONE (0xffffffff) /* allowed by the default policy */

/* The value of the stateful table, keyed by the reverse of a flow F that was
 * allowed: packets of that reverse flow (replies) pass while seen is fresh;
 * packets of F itself pass without classification while version is the
 * running rule set's, counted as hits of slot (F's rule) as if classified. */
struct fw_seen {
	__u64 seen;    /* ns, bpf_ktime_get_coarse_ns of the flow's last packet (a tick's precision) */
	__u32 version; /* fw_state.version that allowed F */
	__u32 slot;    /* the rule that allowed F (gen * FW_MAX_RULES + index), or FW_SLOT_NONE */
};
