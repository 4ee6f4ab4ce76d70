/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Packet parsing helpers for the relay's XDP program.
 *
 * Every helper takes a cursor that points at the header to parse and
 * advances it past that header on success. Return convention:
 *
 *   >= 0  success; the value is what follows (an EtherType in host byte
 *         order, an IP protocol number, or a payload length), as each
 *         helper's comment says;
 *   -1    the header is truncated, malformed or of a kind the kernel path
 *         leaves to user space. The cursor is then unspecified.
 *
 * Predicates (ip4_is_fragment, ipv6_is_ext, ip4_valid, ip6_valid) take no
 * cursor and return 1 or 0.
 *
 * Helpers never return XDP verdicts: only the entry point in xdp.c decides
 * what happens to a packet. All of them are static __always_inline so the
 * verifier sees one function with every bounds check in place.
 */
#ifndef RELAY_PARSE_H
#define RELAY_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "csum.h"

#ifndef ETH_P_8021Q
#define ETH_P_8021Q 0x8100
#endif
#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

/* IPv4 frag_off bits (network byte order after bpf_htons). */
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

/*
 * bounded16 makes the bounds of a 16-bit value explicit to the verifier.
 * Older verifiers (Debian 12's 6.1 among them) lose them across the byte
 * swap of bpf_ntohs and then refuse to add the value to a packet pointer.
 * The compiler knows the value fits and would drop a plain mask, so the
 * mask is written in assembly.
 */
static __always_inline __u32 bounded16(__u32 v)
{
	asm volatile("%0 &= 0xffff" : "+r"(v));
	return v;
}

/* Where parsing has got to in the packet. */
struct hdr_cursor {
	void *pos;
};

/* An 802.1Q / 802.1ad tag as it sits after the MAC addresses. The kernel's
 * struct vlan_hdr lives in a header that is not part of the UAPI. */
struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

/*
 * parse_ethhdr parses an Ethernet header and at most one 802.1Q or 802.1ad
 * tag. Returns the EtherType of what follows, in host byte order, or -1 if
 * the frame is truncated. A second (QinQ inner) tag is returned as its
 * EtherType, which no caller accepts, so double-tagged frames are not
 * classified.
 */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end)
{
	struct ethhdr *eth = nh->pos;
	if ((void *)(eth + 1) > data_end)
		return -1;
	nh->pos = eth + 1;
	__u16 proto = bpf_ntohs(eth->h_proto);

	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
		struct vlan_hdr *vlh = nh->pos;
		if ((void *)(vlh + 1) > data_end)
			return -1;
		nh->pos = vlh + 1;
		proto = bpf_ntohs(vlh->h_vlan_encapsulated_proto);
	}
	return proto;
}

/*
 * parse_iphdr parses an IPv4 header, options included (ihl is bounded by
 * its 4-bit field, and checked against the packet). Returns the protocol of
 * the transport header that follows, or -1 if the header is truncated or
 * has ihl < 5. Fragments are returned like any packet: the caller asks
 * ip4_is_fragment, so that it can count them apart.
 */
static __always_inline int parse_iphdr(struct hdr_cursor *nh, void *data_end,
				       struct iphdr **iphdr)
{
	struct iphdr *iph = nh->pos;
	if ((void *)(iph + 1) > data_end)
		return -1;

	__u32 hdrsize = iph->ihl * 4;
	if (hdrsize < sizeof(*iph))
		return -1;
	if (nh->pos + hdrsize > data_end)
		return -1;

	nh->pos += hdrsize;
	*iphdr = iph;
	return iph->protocol;
}

/*
 * ip4_is_fragment reports whether iph is a fragment (MF set or a nonzero
 * offset): a later fragment carries no transport header, and the first one
 * only part of the datagram, so both are left to the stack's reassembly.
 */
static __always_inline int ip4_is_fragment(const struct iphdr *iph)
{
	return (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET)) != 0;
}

/*
 * ip4_valid reports whether an option-less IPv4 header (ihl 5, checked by
 * the caller) is one the stack would accept for local delivery with a UDP
 * datagram of udp_len bytes after it: version 4, a total length that covers
 * the datagram and lies inside the frame, and a correct header checksum.
 * The kernel path builds a fresh header, so it must not launder one the
 * stack would have dropped.
 */
static __always_inline int ip4_valid(struct iphdr *iph, void *data_end,
				     __u32 udp_len)
{
	if (iph->version != 4)
		return 0;
	__u32 tot_len = bounded16(bpf_ntohs(iph->tot_len));
	if (tot_len < sizeof(*iph) + udp_len)
		return 0;
	if ((void *)iph + tot_len > data_end)
		return 0;
	return csum_fold(csum_words(iph, sizeof(*iph) / 2)) == 0xFFFF;
}

/*
 * ipv6_is_ext reports whether an IPv6 next-header value is an extension
 * header (RFC 8200 section 4 and the IANA list). The kernel path does not
 * walk them; such packets go to the stack.
 */
static __always_inline int ipv6_is_ext(int nexthdr)
{
	switch (nexthdr) {
	case 0:	  /* hop-by-hop options */
	case 43:  /* routing */
	case 44:  /* fragment */
	case 50:  /* ESP */
	case 51:  /* AH */
	case 60:  /* destination options */
	case 135: /* mobility */
	case 139: /* HIP */
	case 140: /* shim6 */
	case 253: /* experimental */
	case 254:
		return 1;
	}
	return 0;
}

/*
 * ip6_valid reports whether an IPv6 header is one the stack would accept
 * with a UDP datagram of udp_len bytes after it: version 6, a payload length
 * that is not 0 (jumbograms are not relayed), covers the datagram and lies
 * inside the frame.
 */
static __always_inline int ip6_valid(struct ipv6hdr *ip6h, void *data_end,
				     __u32 udp_len)
{
	if (ip6h->version != 6)
		return 0;
	__u32 plen = bounded16(bpf_ntohs(ip6h->payload_len));
	if (plen < udp_len)
		return 0;
	if ((void *)(ip6h + 1) + plen > data_end)
		return 0;
	return 1;
}

/*
 * parse_ip6hdr parses the fixed IPv6 header. Returns its next-header value,
 * or -1 if the header is truncated. Extension headers are not walked: a
 * caller that wants UDP sees their protocol number instead and leaves the
 * packet to the stack.
 */
static __always_inline int parse_ip6hdr(struct hdr_cursor *nh, void *data_end,
					struct ipv6hdr **ip6hdr)
{
	struct ipv6hdr *ip6h = nh->pos;
	if ((void *)(ip6h + 1) > data_end)
		return -1;

	nh->pos = ip6h + 1;
	*ip6hdr = ip6h;
	return ip6h->nexthdr;
}

/*
 * parse_udphdr parses a UDP header. Returns the payload length taken from
 * the header's length field, or -1 if the header is truncated, the length
 * is below 8 (this includes 0, used only by IPv6 jumbograms), or the
 * datagram does not fit in the frame. The length field is used rather than
 * the frame's end because Ethernet pads short frames: a 4-byte ChannelData
 * message arrives with padding after it on real NICs.
 */
static __always_inline int parse_udphdr(struct hdr_cursor *nh, void *data_end,
					struct udphdr **udphdr)
{
	struct udphdr *h = nh->pos;
	if ((void *)(h + 1) > data_end)
		return -1;

	__u32 len = bounded16(bpf_ntohs(h->len));
	if (len < sizeof(*h))
		return -1;
	if (nh->pos + len > data_end)
		return -1;

	nh->pos = h + 1;
	*udphdr = h;
	return len - sizeof(*h);
}

#endif /* RELAY_PARSE_H */
