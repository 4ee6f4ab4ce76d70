/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Building the datagram the relay sends, in place of the one it received.
 *
 * The application data stays where it is in the frame; only what precedes
 * it changes. The caller moves the frame's start with bpf_xdp_adjust_head
 * so that exactly the new headers fit before the data, then emit writes
 * them: Ethernet, IPv4 or IPv6, UDP and, towards a client, the ChannelData
 * header. The IP header is new rather than edited, so every combination of
 * families is the same code. Its fields are those the relay's own stack
 * gives a datagram from an unconnected UDP socket by default, so the kernel
 * path and the user-space path send the same packet:
 *
 *   IPv4: TOS 0, ID 0, DF set, TTL 64 (Linux sets DF on UDP under the
 *         default IP_PMTUDISC_WANT, and then ID 0);
 *   IPv6: traffic class 0, flow label 0, hop limit 64.
 *
 * ChannelData leaves unpadded: padding is optional over UDP (RFC 8656
 * section 12.5), and the user-space path must not pad either.
 *
 * emit returns 0, or -1 if the frame is shorter than the headers, which the
 * caller's adjust_head rules out.
 */
#ifndef RELAY_REWRITE_H
#define RELAY_REWRITE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "csum.h"
#include "maps.h"
#include "turn.h"

#define RELAY_TTL 64
#define IP_DF 0x4000

/* out_hdr_len is the length of the headers emit writes for o. */
static __always_inline __u32 out_hdr_len(const struct rewrite *o)
{
	return sizeof(struct ethhdr) +
	       (o->family == AF_INET ? sizeof(struct iphdr) : sizeof(struct ipv6hdr)) +
	       sizeof(struct udphdr) + (o->channel ? CHANNEL_DATA_HEADER_LEN : 0);
}

static __always_inline void write_ip4(struct iphdr *ip, const struct rewrite *o,
				      __u32 udp_len)
{
	*(__be16 *)ip = bpf_htons(0x4500); /* version 4, ihl 5, TOS 0 */
	ip->tot_len = bpf_htons(sizeof(*ip) + udp_len);
	ip->id = 0;
	ip->frag_off = bpf_htons(IP_DF);
	ip->ttl = RELAY_TTL;
	ip->protocol = IPPROTO_UDP;
	ip->check = 0;
	ip->saddr = o->src_addr[3];
	ip->daddr = o->dst_addr[3];
	ip->check = ~csum_fold(csum_words(ip, sizeof(*ip) / 2));
}

static __always_inline void write_ip6(struct ipv6hdr *ip6, const struct rewrite *o,
				      __u32 udp_len)
{
	*(__be32 *)ip6 = bpf_htonl(0x60000000); /* version 6, class 0, flow 0 */
	ip6->payload_len = bpf_htons(udp_len);
	ip6->nexthdr = IPPROTO_UDP;
	ip6->hop_limit = RELAY_TTL;
	__builtin_memcpy(&ip6->saddr, o->src_addr, sizeof(ip6->saddr));
	__builtin_memcpy(&ip6->daddr, o->dst_addr, sizeof(ip6->daddr));
}

/*
 * emit writes the headers of the datagram o describes at the start of the
 * frame, for data_len bytes of data after them, with MAC addresses smac and
 * dmac and UDP checksum check. ip_len and cd_len are compile-time constants
 * that must match o (the caller picks the branch), so that every bound the
 * verifier checks is a constant.
 */
static __always_inline int emit(struct xdp_md *ctx, const struct rewrite *o,
				const __u8 *smac, const __u8 *dmac, __u16 check,
				__u32 data_len, const __u32 ip_len,
				const __u32 cd_len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (data + sizeof(struct ethhdr) + ip_len + sizeof(struct udphdr) + cd_len > data_end)
		return -1;

	struct ethhdr *eth = data;
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);

	__u32 udp_len = sizeof(struct udphdr) + cd_len + data_len;
	struct udphdr *udp;
	if (ip_len == sizeof(struct iphdr)) {
		eth->h_proto = bpf_htons(ETH_P_IP);
		write_ip4((void *)(eth + 1), o, udp_len);
	} else {
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		write_ip6((void *)(eth + 1), o, udp_len);
	}
	udp = (void *)(eth + 1) + ip_len;
	udp->source = o->src_port;
	udp->dest = o->dst_port;
	udp->len = bpf_htons(udp_len);
	udp->check = check;

	if (cd_len) {
		struct channel_data_hdr *cd = (void *)(udp + 1);
		cd->channel = o->channel;
		cd->length = bpf_htons(data_len);
	}
	return 0;
}

/* emit_any is emit for whichever of the four header layouts o needs. */
static __always_inline int emit_any(struct xdp_md *ctx, const struct rewrite *o,
				    const __u8 *smac, const __u8 *dmac,
				    __u16 check, __u32 data_len)
{
	if (o->family == AF_INET) {
		if (o->channel)
			return emit(ctx, o, smac, dmac, check, data_len,
				    sizeof(struct iphdr), CHANNEL_DATA_HEADER_LEN);
		return emit(ctx, o, smac, dmac, check, data_len, sizeof(struct iphdr), 0);
	}
	if (o->channel)
		return emit(ctx, o, smac, dmac, check, data_len,
			    sizeof(struct ipv6hdr), CHANNEL_DATA_HEADER_LEN);
	return emit(ctx, o, smac, dmac, check, data_len, sizeof(struct ipv6hdr), 0);
}

#endif /* RELAY_REWRITE_H */
