/* Maps of the eBPF proxy data plane; Go mirrors them in maps.go
 * (TestStructsMatchC checks the layouts). IPv4 and IPv6 have maps of their
 * own: the IPv4 keys stay small. Addresses are in network byte order. */
#pragma once

#include <linux/types.h>

struct px_config {
	__be32 range_addr;   /* IPv4 service range */
	__be32 range_mask;
	__u8 gw_mac[6];      /* the node bridge's MAC: source of redirected frames */
	__u16 pad;
	__be32 range6_addr[4]; /* IPv6 service range */
	__be32 range6_mask[4];
	/* The inter-node tunnel (tunnel.bpf.h); node_ip 0: none. */
	__be32 node_ip;       /* this node's tunnel end: the outer source */
	__be16 tunnel_port;   /* its UDP port: outer source port, and where peers send */
	__u16 pad2;
	__u32 ul_ifindex;     /* the underlay interface: decapsulation there, routes through it */
};

/* services, services6: a service IP and what it resolves to */
struct px_service {
	__u32 kind;  /* 0 round robin, 1 instance */
	__u32 count; /* backends */
};

struct px_backend_key {
	__be32 service_ip;
	__u32 index;
};

/* an instance: its namespace address and, on this node, where its host
 * veth is; on another node, where that node's tunnel is */
struct px_backend {
	__be32 ns_ip;
	__u32 ifindex; /* host veth; 0 on another node */
	__u8 mac[6];   /* the service's interface inside its namespace */
	__be16 node_port; /* another node's tunnel port */
	__be32 node_ip;   /* another node's IPv4; 0: this node */
};

struct px_flow {
	__be32 src;
	__be32 dst;
	__be16 sport; /* ICMP echo: the identifier in both */
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* what to do with a packet of a flow */
struct px_session {
	__be32 new_src;
	__be32 new_dst;
	__u32 ifindex;  /* host veth to redirect to (peer of the destination) */
	__u8 mac[6];    /* destination MAC inside that namespace */
	__u16 pad;
	__u32 csum_diff; /* checksum change of the address rewrite, precomputed */
	__u64 last_seen;
	__be32 node_ip;   /* tunnel the packet to this node (0: deliver here) */
	__be16 node_port; /* at this UDP port */
	__u16 pad2;
	__be32 from_node; /* the node the flow's packets come from through the tunnel (0: a service here) */
	__u32 pad3;
};

/* IPv6: the same tables with 16-byte addresses */
struct px_backend_key6 {
	__be32 service_ip[4];
	__u32 index;
};

struct px_backend6 {
	__be32 ns_ip[4];
	__u32 ifindex;
	__u8 mac[6];
	__be16 node_port;
	__be32 node_ip;
};

struct px_flow6 {
	__be32 src[4];
	__be32 dst[4];
	__be16 sport; /* ICMPv6 echo: the identifier in both */
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct px_session6 {
	__be32 new_src[4];
	__be32 new_dst[4];
	__u32 ifindex;
	__u8 mac[6];
	__u16 pad;
	__u32 csum_diff; /* L4 checksum change of the address rewrite, precomputed */
	__be32 node_ip;   /* as in px_session */
	__be16 node_port;
	__u16 pad2;
	__be32 from_node;
};

/* nexthops: the way to a peer node through the underlay, from
 * bpf_fib_lookup, cached (the control plane flushes it every second) */
struct px_nexthop {
	__u32 ifindex; /* the interface out */
	__u32 mtu;     /* the route's MTU */
	__u8 dmac[6];
	__u8 smac[6];
};

/* peers: per node at the other end of the tunnel (per CPU) */
struct px_peer {
	__u64 tx_packets; /* encapsulated to it */
	__u64 tx_bytes;   /* outer frames */
	__u64 rx_packets; /* decapsulated from it */
	__u64 rx_bytes;
};

/* misses: a translation-table miss, for the control plane to resolve */
struct px_miss {
	__u8 family; /* 4 or 6 */
	__u8 proto;
	__u16 pad;
	__be32 service_ip[4]; /* IPv4: the first word, the rest zero */
	__be32 sender[4];
};

/* stats array indexes */
#define PX_HIT (0)        /* translated by an existing session */
#define PX_NEW (1)        /* new session created */
#define PX_PASS (2)       /* to a service IP but not ours to translate: left to the user-space proxy */
#define PX_MALFORMED (3)  /* to a service IP but unparseable: passed untouched */
#define PX_ERROR (4)      /* a helper failed: dropped */
#define PX_V6_EXT (5)     /* IPv6 to a service IP with extension headers: passed untouched */
#define PX_MISS_DROPPED (6) /* a miss event found the ring buffer full */
#define PX_ICMP_ERR (7)   /* an ICMP / ICMPv6 error about a flow with a session: translated */
#define PX_ICMP_NOFLOW (8) /* an ICMP / ICMPv6 error about a flow without one: passed untouched */
#define PX_TUN_TOOBIG (9)    /* for the tunnel, larger than the path MTU allows once encapsulated: passed untouched */
#define PX_TUN_NOROUTE (10)  /* for the tunnel, no route to the node through the underlay: passed untouched */
#define PX_DECAP_UNKNOWN_PEER (11)     /* tunnel datagram from a node that is not a peer: passed on */
#define PX_DECAP_NOT_PEER_INSTANCE (12) /* a new flow whose source is no instance of the sending node: passed on */
#define PX_DECAP_NOT_LOCAL (13)        /* a new flow whose destination is no instance here: passed on */
#define PX_DECAP_UNSUPPORTED (14)      /* an inner packet the data plane does not translate: passed on */
#define PX_DECAP_WRONG_PEER (15)       /* a flow's packet from another node than its own: passed on */
#define PX_NSTATS (16)

/* Drop reasons (bpf/reasons.h nm_drop; named in Go by dropReasonNames). Every
 * drop is also counted as PX_ERROR ("errors"); the reason says which helper
 * failed. No detail. */
#define PX_REASON_CHECKSUM (1) /* updating an L4 or ICMP checksum failed */
#define PX_REASON_SESSION (2)  /* storing a new flow's sessions failed */
#define PX_REASON_ENCAP (3)    /* the tunnel's encapsulation failed */
#define PX_REASON_DECAP (4)    /* the tunnel's decapsulation failed (an IPv6 inner packet before Linux 6.3) */
