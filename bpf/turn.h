/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Recognising the two message formats that share the TURN listen port
 * (RFC 8656 section 12, RFC 7983 demultiplexing):
 *
 *   STUN:        first two bits 00, magic cookie 0x2112A442 at offset 4,
 *                20-byte header;
 *   ChannelData: first byte 0x40..0x7F (channel numbers 0x4000-0x7FFF:
 *                RFC 8656 uses 0x4000-0x4FFF, RFC 5766 clients up to
 *                0x7FFF), 4-byte header.
 *
 * Helpers return 1 when the payload is of that kind and 0 otherwise; they
 * never return verdicts. len is the UDP payload length from parse_udphdr,
 * which guarantees the payload lies inside the frame; the pointer checks
 * below repeat that for the verifier.
 */
#ifndef RELAY_TURN_H
#define RELAY_TURN_H

#include <linux/types.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define STUN_HEADER_LEN 20
#define STUN_MAGIC_COOKIE 0x2112A442
#define CHANNEL_DATA_HEADER_LEN 4

struct stun_hdr {
	__be16 type;
	__be16 length;
	__be32 cookie;
	__u8 transaction_id[12];
};

struct channel_data_hdr {
	__be16 channel;
	__be16 length;
};

/* is_stun reports whether the payload at p, len bytes long, is STUN. */
static __always_inline int is_stun(void *p, void *data_end, int len)
{
	struct stun_hdr *h = p;
	if (len < STUN_HEADER_LEN || (void *)(h + 1) > data_end)
		return 0;
	if (h->type & bpf_htons(0xC000))
		return 0;
	return h->cookie == bpf_htonl(STUN_MAGIC_COOKIE);
}

/* is_channel_data reports whether the payload at p, len bytes long, is a
 * ChannelData message. Its length field is not checked here. */
static __always_inline int is_channel_data(void *p, void *data_end, int len)
{
	struct channel_data_hdr *h = p;
	if (len < CHANNEL_DATA_HEADER_LEN || (void *)(h + 1) > data_end)
		return 0;
	__u8 first = *(__u8 *)h;
	return first >= 0x40 && first <= 0x7F;
}

#endif /* RELAY_TURN_H */
