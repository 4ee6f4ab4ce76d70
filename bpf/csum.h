/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Internet checksum helpers (RFC 1071, incremental update per RFC 1624),
 * after katran's csum_helpers.h.
 *
 * Sums are kept in 64 bits and folded to 16 at the end. Every value is
 * summed as it lies in memory (network byte order read by a little-endian
 * machine): the one's-complement sum commutes with byte swapping, so a sum
 * of memory-order words, folded and stored back as is, is the checksum in
 * network order. Constants that enter a sum therefore go through bpf_htons.
 */
#ifndef RELAY_CSUM_H
#define RELAY_CSUM_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/* csum_fold folds a 64-bit sum of 16-bit words to 16 bits, end-around
 * carries included. */
static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xFFFFFFFF) + (sum >> 32);
	sum = (sum & 0xFFFF) + (sum >> 16);
	sum = (sum & 0xFFFF) + (sum >> 16);
	sum = (sum & 0xFFFF) + (sum >> 16);
	return sum;
}

/* csum_words sums n 16-bit words at p. n is a compile-time constant; p
 * must be valid for 2n bytes (the caller checks packet bounds). */
static __always_inline __u64 csum_words(const void *p, int n)
{
	const __u16 *w = p;
	__u64 sum = 0;
#pragma unroll
	for (int i = 0; i < n; i++)
		sum += w[i];
	return sum;
}

/* csum_word32 sums the two halves of a 32-bit word. */
static __always_inline __u64 csum_word32(__u32 w)
{
	return (w & 0xFFFF) + (w >> 16);
}

/* csum_byte is what byte b adds to a sum when it lies off bytes after an
 * even boundary: at an even offset it is the first (high-order) byte of its
 * word, which in memory order is the low one. */
static __always_inline __u64 csum_byte(__u8 b, __u32 off)
{
	return (off & 1) ? (__u64)b << 8 : b;
}

/*
 * csum_replace returns the checksum field that replaces check when words
 * summing to old leave the checksummed data and words summing to new enter
 * it: RFC 1624 equation 3, HC' = ~(~HC + ~m + m'). A result of 0 is
 * returned as 0xFFFF, as UDP requires (0 means "no checksum").
 */
static __always_inline __u16 csum_replace(__u16 check, __u64 old, __u64 new)
{
	__u64 sum = (__u16)~check;
	sum += (__u16)~csum_fold(old);
	sum += new;
	__u16 res = ~csum_fold(sum);
	return res ? res : 0xFFFF;
}

#endif /* RELAY_CSUM_H */
