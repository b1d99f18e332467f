/* Internet checksum helpers (RFC 1071 sums, RFC 1624 incremental updates).
 *
 * For an address rewrite on live traffic prefer the kernel helpers, which know
 * about checksum offload: bpf_l3_csum_replace for the IPv4 header, and
 * bpf_l4_csum_replace(..., NM_CSUM_PSEUDO(size)) for TCP/UDP, whose checksum
 * covers the pseudo-header (see KERNEL-NOTES: without the flag a
 * CHECKSUM_PARTIAL packet ends up with a wrong checksum). */
#pragma once

#include <linux/bpf.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

#define NM_CSUM_PSEUDO(size) (BPF_F_PSEUDO_HDR | (size))

/* csum_fold folds a 32-bit one's-complement sum to 16 bits and complements it. */
static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* csum_replace4 returns checksum check updated for a 32-bit field changing
 * from from to to (RFC 1624 eqn. 3); all values in network byte order. */
static __always_inline __u16 csum_replace4(__u16 check, __be32 from, __be32 to)
{
	__u32 sum = (__u16)~check;
	sum += (__u16)~(from & 0xffff) + (__u16)~(from >> 16);
	sum += (to & 0xffff) + (to >> 16);
	return csum_fold(sum);
}

/* ipv4_csum computes an IPv4 header checksum from scratch, options included
 * (the header's check field must be zero). data_end bounds the read. */
static __always_inline __u16 ipv4_csum(struct iphdr *ip, void *data_end)
{
	__u32 sum = 0;
	__u16 *p = (__u16 *)ip;
#pragma unroll
	for (int i = 0; i < 30; i++) { /* at most 60 bytes */
		if (i >= ip->ihl * 2 || (void *)(p + i + 1) > data_end)
			break;
		sum += p[i];
	}
	return csum_fold(sum);
}
