// SPDX-License-Identifier: GPL-2.0
//go:build ignore

/*
 * relay_xdp: the relay's XDP program.
 *
 * Today it classifies UDP addressed to the relay's ports and counts each
 * class per CPU; every packet continues to the stack (XDP_PASS), where the
 * user-space relay handles it. The ChannelData fast paths (rewrite and
 * XDP_TX/redirect) will branch off the classification below.
 *
 * Not classified, and so not counted: packets to other ports, non-UDP,
 * IPv4 fragments, IPv6 with extension headers before UDP, more than one
 * VLAN tag, and truncated or malformed headers.
 */

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "parse.h"
#include "maps.h"
#include "turn.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * Load-time knobs, host byte order, set by Load in bpf/xdp.go before the
 * program is loaded. Being constants, they let the verifier prune the
 * branches they rule out.
 */
const volatile __u16 listen_port = 0;	 /* TURN listen port, e.g. 3478 */
const volatile __u16 alloc_port_min = 0; /* relayed-address port range */
const volatile __u16 alloc_port_max = 0;

/*
 * classify returns the class of a UDP datagram with destination port dport
 * and a payload of len bytes at payload, or -1 when it is not for the relay.
 */
static __always_inline int classify(__u16 dport, void *payload,
				    void *data_end, int len)
{
	if (dport == listen_port) {
		if (is_stun(payload, data_end, len))
			return CLASS_STUN;
		if (is_channel_data(payload, data_end, len))
			return CLASS_CHANNEL_DATA;
		return CLASS_OTHER;
	}
	if (dport >= alloc_port_min && dport <= alloc_port_max)
		return CLASS_ALLOCATION;
	return -1;
}

SEC("xdp")
int relay_xdp(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = { .pos = (void *)(long)ctx->data };
	struct iphdr *iph;
	struct ipv6hdr *ip6h;
	struct udphdr *udph;
	int l4;

	switch (parse_ethhdr(&nh, data_end)) {
	case ETH_P_IP:
		l4 = parse_iphdr(&nh, data_end, &iph);
		break;
	case ETH_P_IPV6:
		l4 = parse_ip6hdr(&nh, data_end, &ip6h);
		break;
	default:
		return XDP_PASS;
	}
	if (l4 != IPPROTO_UDP)
		return XDP_PASS;

	int len = parse_udphdr(&nh, data_end, &udph);
	if (len < 0)
		return XDP_PASS;

	int class = classify(bpf_ntohs(udph->dest), nh.pos, data_end, len);
	if (class < 0)
		return XDP_PASS;

	count(class, len);
	return XDP_PASS;
}
