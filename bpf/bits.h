/* Bit helpers for classifiers that AND per-field rule bit sets. */
#pragma once

#include <linux/types.h>

/* popcount64 counts the set bits of x with shifts, masks and one multiply:
 * no branch, so the verifier walks it once whatever x holds. */
static __always_inline __u32 popcount64(__u64 x)
{
	x = x - ((x >> 1) & 0x5555555555555555ULL);
	x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (__u32)((x * 0x0101010101010101ULL) >> 56);
}

/* lowest_bit returns the index of the lowest set bit of x (64 for zero): the
 * bits below it, counted. It has no data-dependent branch: a classifier
 * calls it on every word, and each branch here would double the states the
 * verifier keeps for everything that follows (the firewall's bpf_loop body
 * went over the kernel's 1,000,000-instruction limit on 6.18 with one). */
static __always_inline __u32 lowest_bit(__u64 x)
{
	return popcount64((x & -x) - 1);
}
