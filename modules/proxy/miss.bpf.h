/* proxy: reporting translation-table misses to the control plane. The missed
 * packet itself still goes on to the user-space proxy; the event lets the
 * control plane push a translation it should have pushed, so the flow's next
 * packets hit in the kernel. At most one event per service IP per
 * PX_MISS_INTERVAL_NS: a flow whose packets all miss (a service with only
 * remote instances) does not flood the ring buffer. */
#pragma once

#include <bpf/bpf_endian.h>

#include "common.bpf.h"

#define PX_MISS_INTERVAL_NS (1000000000ULL)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 65536); /* knob: bytes, a power of two, at least a page */
} misses SEC(".maps");

/* miss_limit: service IP (IPv4 mapped into IPv6) -> time of its last event */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096); /* knob */
	__type(key, struct in6_addr);
	__type(value, __u64);
} miss_limit SEC(".maps");

/* report_miss sends a miss event unless one went out for the service IP
 * within the interval. IPv4 addresses are one word at dst and src. */
static __always_inline void report_miss(__u8 family, __u8 proto, const __be32 *dst, const __be32 *src)
{
	__be32 key[4] = {};
	if (family == 4) {
		key[2] = bpf_htonl(0xffff);
		key[3] = dst[0];
	} else {
		__builtin_memcpy(key, dst, 16);
	}
	__u64 now = bpf_ktime_get_coarse_ns(); /* a tick's precision is plenty for a second */
	__u64 *last = bpf_map_lookup_elem(&miss_limit, key);
	if (last && now - *last < PX_MISS_INTERVAL_NS)
		return;
	struct px_miss *e = bpf_ringbuf_reserve(&misses, sizeof(*e), 0);
	if (!e) {
		count(PX_MISS_DROPPED); /* no limiter update: the next miss tries again */
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->family = family;
	e->proto = proto;
	if (family == 4) {
		e->service_ip[0] = dst[0];
		e->sender[0] = src[0];
	} else {
		__builtin_memcpy(e->service_ip, dst, 16);
		__builtin_memcpy(e->sender, src, 16);
	}
	bpf_ringbuf_submit(e, 0);
	if (last)
		*last = now;
	else
		bpf_map_update_elem(&miss_limit, key, &now, BPF_ANY);
}
