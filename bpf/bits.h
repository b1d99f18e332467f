/* Bit helpers for classifiers that AND per-field rule bit sets. */
#pragma once

#include <linux/types.h>

/* lowest_bit returns the index of the lowest set bit of a non-zero x. */
static __always_inline __u32 lowest_bit(__u64 x)
{
	__u32 n = 0;
	x &= -x;
	if (x & 0xffffffff00000000ULL) n += 32;
	if (x & 0xffff0000ffff0000ULL) n += 16;
	if (x & 0xff00ff00ff00ff00ULL) n += 8;
	if (x & 0xf0f0f0f0f0f0f0f0ULL) n += 4;
	if (x & 0xccccccccccccccccULL) n += 2;
	if (x & 0xaaaaaaaaaaaaaaaaULL) n += 1;
	return n;
}
