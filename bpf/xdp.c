// SPDX-License-Identifier: GPL-2.0
//go:build ignore

/*
 * relay_xdp: the relay's XDP program, the kernel half of its data path.
 *
 * It classifies UDP addressed to the relay's ports and counts each class,
 * and it relays the datagrams of known channel bindings itself:
 *
 *   ChannelData from a client to the listen port, known by (client, listen
 *   address, channel): the 4-byte header is stripped and the data leaves as
 *   UDP from the allocation's relayed address to the peer;
 *
 *   UDP from a peer to an allocation port, known by (peer, relayed
 *   address): a ChannelData header is prepended and the message leaves as
 *   UDP from the listen address to the client.
 *
 * Either side may be IPv4 or IPv6 (v4->v4, v6->v6, v4->v6, v6->v4). When
 * the peer of a binding is another allocation of this relay (both ends are
 * its clients), the datagram is relayed twice in one pass: the first
 * rewrite's destination is this host, so the FIB lookup does not forward it
 * (BPF_FIB_LKUP_RET_NOT_FWDED), and the program then looks up the binding
 * of the allocation it is addressed to and sends the ChannelData to that
 * client directly. Emitting it and letting it come back is not an option:
 * a packet cannot be handed back to XDP on the host that sends it, and the
 * stack would take it for a spoofed one (its source is a local address).
 *
 * The next hop comes from bpf_fib_lookup, which also enforces the egress
 * MTU: XDP_TX when it leaves by the ingress NIC, a redirect through the
 * tx_ports devmap otherwise. Each binding caches the FIB's last answer
 * (struct next_hop in maps.h) for next_hop_ttl_ns, or failed_hop_ttl_ns
 * if it failed, so that most packets cost one map lookup and no FIB
 * lookup. Everything the kernel path does not relay goes on to the stack
 * untouched (XDP_PASS), where the user-space relay handles it; the only
 * drop is a ChannelData length that does not fit its datagram, which user
 * space drops too. Each packet is counted under one reason (enum reason
 * in maps.h); relayed data also on its binding.
 *
 * The code stays within what Debian 12's 6.1 verifier accepts: bounded
 * loops only, bounded16() on byte-swapped lengths before they reach a
 * packet pointer, and packet pointers reloaded after bpf_xdp_adjust_head.
 */

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "clock.h"
#include "parse.h"
#include "maps.h"
#include "turn.h"
#include "csum.h"
#include "rewrite.h"

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
 * How long a binding's cached next hop (struct next_hop in maps.h) serves
 * before the FIB is asked again: the longest a route, neighbour, MTU or
 * forwarding change takes to reach the kernel path. Longer means fewer
 * lookups for the many low-rate bindings (an audio call sends 50 packets a
 * second); the FIB's answers are seconds-stable. Config.NextHopTTL.
 */
const volatile __u64 next_hop_ttl_ns = 1000000000;

/*
 * How long a binding keeps a failed lookup (no neighbour, no route,
 * forwarding off) before it asks again: what a neighbour that resolves or
 * a route that appears waits for the kernel path, its packets relayed by
 * user space meanwhile. Short, but one lookup per packet no more. Set by
 * Load: FailedNextHopTTL, at most next_hop_ttl_ns.
 */
const volatile __u64 failed_hop_ttl_ns = 10000000;

/* More than any frame holds: XDP without multi-buffer sees one page. */
#define MAX_FRAME_DATA 0x3FFF

/* bounded_frame is bounded16 for a value already checked against
 * MAX_FRAME_DATA: the compiler may test one copy and add another to the
 * pointer, so the bound is restated, in assembly, on the copy used. */
static __always_inline __u32 bounded_frame(__u32 v)
{
	asm volatile("%0 &= 0x3fff" : "+r"(v));
	return v;
}

static __always_inline int is_alloc_port(__u16 port)
{
	return port >= alloc_port_min && port <= alloc_port_max;
}

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
	if (is_alloc_port(dport))
		return CLASS_ALLOCATION;
	return -1;
}

/* csum_addr sums the words of an address as the pseudo-header carries it:
 * 4 bytes for IPv4 (the last word of the mapped form), 16 for IPv6. */
static __always_inline __u64 csum_addr(const __be32 *a, __u16 family)
{
	if (family == AF_INET)
		return csum_word32(a[3]);
	return csum_word32(a[0]) + csum_word32(a[1]) + csum_word32(a[2]) +
	       csum_word32(a[3]);
}

/*
 * csum_rewrite sums what the UDP checksum covers of o's datagram apart from
 * the data: pseudo-header addresses, ports, the length (in the
 * pseudo-header and in the UDP header) and the ChannelData header. The
 * protocol number is left out: it is the same on both sides.
 */
static __always_inline __u64 csum_rewrite(const struct rewrite *o, __u32 data_len)
{
	__u32 udp_len = sizeof(struct udphdr) + data_len;
	__u64 sum = 0;
	if (o->channel) {
		udp_len += CHANNEL_DATA_HEADER_LEN;
		sum += o->channel + bpf_htons(data_len);
	}
	return sum + csum_addr(o->src_addr, o->family) +
	       csum_addr(o->dst_addr, o->family) + o->src_port + o->dst_port +
	       2 * bpf_htons(udp_len);
}

/*
 * fib asks bpf_fib_lookup for the next hop of o's datagram, l3_len bytes
 * from the IP header on, as the kernel would forward it from the ingress
 * NIC. Returns a BPF_FIB_LKUP_RET_* code; f holds the answer.
 */
static __always_inline long fib(struct xdp_md *ctx, const struct rewrite *o,
				__u32 l3_len, struct bpf_fib_lookup *f)
{
	__builtin_memset(f, 0, sizeof(*f));
	f->family = o->family;
	f->l4_protocol = IPPROTO_UDP;
	f->sport = o->src_port;
	f->dport = o->dst_port;
	f->tot_len = l3_len; /* XDP frames stay far below 64 KiB */
	f->ifindex = ctx->ingress_ifindex;
	if (o->family == AF_INET) {
		f->ipv4_src = o->src_addr[3];
		f->ipv4_dst = o->dst_addr[3];
	} else {
		__builtin_memcpy(f->ipv6_src, o->src_addr, sizeof(f->ipv6_src));
		__builtin_memcpy(f->ipv6_dst, o->dst_addr, sizeof(f->ipv6_dst));
	}
	return bpf_fib_lookup(ctx, f, sizeof(*f), 0);
}

/*
 * route finds the next hop of the datagram binding v sends (o, data_len
 * bytes of data) for a packet that arrived at now: from v's cache while it
 * serves (hop_get) and the datagram fits its size bound; from
 * bpf_fib_lookup otherwise, whose answer refills the cache. Returns a
 * BPF_FIB_LKUP_RET_* code; h holds the next hop on success.
 */
static __always_inline long route(struct xdp_md *ctx, struct binding_value *v,
				  const struct rewrite *o, __u32 data_len,
				  __u64 now, struct next_hop *h)
{
	__u32 l3_len = out_hdr_len(o) - sizeof(struct ethhdr) + data_len;
	if (hop_get(v, ctx->ingress_ifindex, now, h) && l3_len <= h->mtu)
		return h->rc;

	struct bpf_fib_lookup f;
	long rc = fib(ctx, o, l3_len, &f);
	__u64 ttl = next_hop_ttl_ns;
	__builtin_memset(h, 0, sizeof(*h));
	switch (rc) {
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return rc; /* says nothing of smaller datagrams */
	case BPF_FIB_LKUP_RET_SUCCESS:
		h->ifindex = f.ifindex;
		__builtin_memcpy(h->smac, f.smac, sizeof(h->smac));
		__builtin_memcpy(h->dmac, f.dmac, sizeof(h->dmac));
		h->mtu = f.mtu_result;
		break;
	case BPF_FIB_LKUP_RET_NOT_FWDED:
		h->mtu = 0xFFFF; /* stays here: no MTU applies */
		break;
	default:
		/* Some failures (no neighbour) come after the MTU check,
		 * which a larger datagram might fail instead. */
		h->mtu = l3_len;
		ttl = failed_hop_ttl_ns;
	}
	h->expires_ns = now + ttl;
	h->ingress_ifindex = ctx->ingress_ifindex;
	h->rc = rc;
	hop_put(v, h, now);
	return rc;
}

/*
 * relay decides what happens to the packet in ctx, rewriting it when it is
 * relayed, and returns why (enum reason); the entry point turns that into a
 * verdict. The order of the checks is the one the Go reference follows.
 * Until bpf_xdp_adjust_head succeeds the packet is untouched, so every
 * earlier return passes or drops the frame as it came.
 */
static __always_inline int relay(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = { .pos = data };
	struct binding_key key = {};
	struct iphdr *iph;
	struct ipv6hdr *ip6h;
	struct udphdr *udph;
	int l4;

	int proto = parse_ethhdr(&nh, data_end);
	if (proto < 0)
		return REASON_MALFORMED;
	int tagged = nh.pos != data + sizeof(struct ethhdr);
	/* Valid for 20 bytes whichever the family, once parsed below. */
	void *l3 = nh.pos;

	switch (proto) {
	case ETH_P_IP:
		l4 = parse_iphdr(&nh, data_end, &iph);
		if (l4 < 0)
			return REASON_MALFORMED;
		if (ip4_is_fragment(iph))
			return REASON_FRAGMENT;
		key.family = AF_INET;
		key.remote_addr[2] = bpf_htonl(0xFFFF);
		key.remote_addr[3] = iph->saddr;
		key.local_addr[2] = bpf_htonl(0xFFFF);
		key.local_addr[3] = iph->daddr;
		break;
	case ETH_P_IPV6:
		l4 = parse_ip6hdr(&nh, data_end, &ip6h);
		if (l4 < 0)
			return REASON_MALFORMED;
		if (ipv6_is_ext(l4))
			return REASON_IPV6_EXT;
		key.family = AF_INET6;
		__builtin_memcpy(key.remote_addr, &ip6h->saddr, sizeof(key.remote_addr));
		__builtin_memcpy(key.local_addr, &ip6h->daddr, sizeof(key.local_addr));
		break;
	default:
		return REASON_NOT_IP;
	}
	if (l4 != IPPROTO_UDP)
		return REASON_NOT_UDP;

	int len = parse_udphdr(&nh, data_end, &udph);
	if (len < 0)
		return REASON_MALFORMED;
	void *payload = nh.pos;

	int class = classify(bpf_ntohs(udph->dest), payload, data_end, len);
	if (class < 0)
		return REASON_OTHER_PORT;
	count(class, len);
	if (class != CLASS_CHANNEL_DATA && class != CLASS_ALLOCATION)
		return REASON_CONTROL;

	/* A relay candidate. Leave to the stack what it would judge
	 * differently from a fresh header, or what the rewrite cannot carry. */
	if (tagged)
		return REASON_VLAN;
	__u32 udp_len = len + sizeof(struct udphdr);
	__u32 in_hdr_len = sizeof(struct ethhdr) + sizeof(struct udphdr);
	if (key.family == AF_INET) {
		iph = l3;
		if (iph->ihl != 5)
			return REASON_IP_OPTIONS;
		if (!ip4_valid(iph, data_end, udp_len))
			return REASON_MALFORMED;
		in_hdr_len += sizeof(struct iphdr);
	} else {
		if (!ip6_valid(l3, data_end, udp_len))
			return REASON_MALFORMED;
		in_hdr_len += sizeof(struct ipv6hdr);
	}
	key.remote_port = udph->source;
	key.local_port = udph->dest;
	__u16 in_check = udph->check;

	/* What the checksum loses besides the addresses, ports and length:
	 * the ChannelData header and its padding. */
	__u64 in_extra = 0;
	__u32 data_len = len;
	if (class == CLASS_CHANNEL_DATA) {
		struct channel_data_hdr *cd = payload;
		if ((void *)(cd + 1) > data_end)
			return REASON_MALFORMED;
		data_len = bounded16(bpf_ntohs(cd->length));
		if (data_len + CHANNEL_DATA_HEADER_LEN > (__u32)len)
			return REASON_CHANNEL_LENGTH;
		/* Never true: a frame the program sees fits in a page. It
		 * bounds the padding's offset below for the verifier, which
		 * refuses packet offsets that might pass 64 KiB. */
		if (data_len > MAX_FRAME_DATA)
			return REASON_MALFORMED;
		__u32 pad = len - CHANNEL_DATA_HEADER_LEN - data_len;
		if (pad > 3)
			return REASON_CHANNEL_PADDING;
		key.channel = cd->channel;
		in_extra = cd->channel + cd->length;
		in_hdr_len += CHANNEL_DATA_HEADER_LEN;

		/* Up to three padding bytes, unrolled by hand. */
		__u8 *p = payload + CHANNEL_DATA_HEADER_LEN + bounded_frame(data_len);
		if (pad > 0) {
			if ((void *)(p + 1) > data_end)
				return REASON_MALFORMED;
			in_extra += csum_byte(p[0], data_len);
		}
		if (pad > 1) {
			if ((void *)(p + 2) > data_end)
				return REASON_MALFORMED;
			in_extra += csum_byte(p[1], data_len + 1);
		}
		if (pad > 2) {
			if ((void *)(p + 3) > data_end)
				return REASON_MALFORMED;
			in_extra += csum_byte(p[2], data_len + 2);
		}
	}

	struct binding_value *first = bpf_map_lookup_elem(&bindings, &key);
	if (!first)
		return REASON_NO_BINDING;
	struct binding_value *second = NULL;
	struct rewrite out = first->out;
	__u64 now = now_ns();
	struct next_hop hop = {};
	long rc = route(ctx, first, &out, data_len, now, &hop);

	/* Towards a peer that is an allocation of this relay: relay it again,
	 * to that allocation's client. */
	if (rc == BPF_FIB_LKUP_RET_NOT_FWDED && !out.channel &&
	    is_alloc_port(bpf_ntohs(out.dst_port))) {
		struct binding_key k2 = {
			.remote_port = out.src_port,
			.local_port = out.dst_port,
			.family = out.family,
		};
		__builtin_memcpy(k2.remote_addr, out.src_addr, sizeof(k2.remote_addr));
		__builtin_memcpy(k2.local_addr, out.dst_addr, sizeof(k2.local_addr));
		second = bpf_map_lookup_elem(&bindings, &k2);
		if (!second)
			return REASON_NO_BINDING;
		out = second->out;
		rc = route(ctx, second, &out, data_len, now, &hop);
	}
	/* Debian 12's 6.1 verifier cannot tell that a failed lookup's code is
	 * not 0, and would walk the success path with what the compiler left
	 * in hop's registers there (a map pointer): hide rc from the compiler,
	 * and give hop a value on every path. */
	barrier_var(rc);
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		break;
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
		return REASON_FWD_DISABLED;
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return REASON_MTU;
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		return REASON_NO_NEIGH;
	default:
		return REASON_UNROUTABLE;
	}

	/* IPv6 forbids a zero UDP checksum, and one cannot be computed
	 * without reading the whole payload. */
	if (!in_check && (key.family == AF_INET6 || out.family == AF_INET6))
		return REASON_CSUM_ZERO;

	int reason = REASON_TX;
	if (hop.ifindex != ctx->ingress_ifindex) {
		/* Records the target now; the frame leaves after return. Asked
		 * per packet, cached hop or not: tx_ports changes with Attach. */
		if (bpf_redirect_map(&tx_ports, hop.ifindex, 0) != XDP_REDIRECT)
			return REASON_NO_TX_PORT;
		reason = REASON_REDIRECT;
	}

	/* An IPv4 datagram without a checksum keeps none. */
	__u16 check = 0;
	if (in_check) {
		__u64 in_sum = csum_addr(key.remote_addr, key.family) +
			       csum_addr(key.local_addr, key.family) +
			       key.remote_port + key.local_port +
			       2 * (__u64)bpf_htons(udp_len) + in_extra;
		check = csum_replace(in_check, in_sum, csum_rewrite(&out, data_len));
	}

	__u32 out_len = out_hdr_len(&out);
	if (bpf_xdp_adjust_head(ctx, (int)in_hdr_len - (int)out_len))
		return REASON_NO_HEADROOM;
	/* From here on the frame is changed: no more passing it. */
	if (emit_any(ctx, &out, hop.smac, hop.dmac, check, data_len))
		return REASON_ABORTED;

	/* Cut ChannelData padding and Ethernet trailer: the frame ends with
	 * the data. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	int excess = (int)(data_end - data) - (int)(out_len + data_len);
	if (excess > 0 && bpf_xdp_adjust_tail(ctx, -excess))
		return REASON_ABORTED;

	account(first, data_len, now);
	if (second)
		account(second, data_len, now);
	return reason;
}

SEC("xdp")
int relay_xdp(struct xdp_md *ctx)
{
	__u64 frame_len = ctx->data_end - ctx->data;
	int reason = relay(ctx);
	count_reason(reason, frame_len);

	switch (reason) {
	case REASON_TX:
		return XDP_TX;
	case REASON_REDIRECT:
		return XDP_REDIRECT;
	case REASON_CHANNEL_LENGTH:
		return XDP_DROP;
	case REASON_ABORTED:
		return XDP_ABORTED;
	default:
		return XDP_PASS;
	}
}
