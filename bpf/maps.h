/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Maps shared between the XDP program and user space (bpf/xdp.go), and the
 * helpers that update them.
 *
 * Maps are pinned by name: loaded with a pin path, a map whose pin already
 * exists is reused, so counters and the relay's bindings survive a reload
 * of the program, and the relay (another process) opens them by path.
 */
#ifndef RELAY_MAPS_H
#define RELAY_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/*
 * What a packet addressed to the relay is. The values index the counters
 * map; bpf/counters.go mirrors them as Class. Append new entries before
 * CLASS_MAX, never renumber: user space and pinned maps rely on the values.
 */
enum pkt_class {
	CLASS_STUN = 0,		/* STUN message to the listen port */
	CLASS_CHANNEL_DATA = 1, /* ChannelData message to the listen port */
	CLASS_ALLOCATION = 2,	/* any UDP to a port of the allocation range */
	CLASS_OTHER = 3,	/* anything else to the listen port */
	CLASS_MAX,
};

/*
 * One counter. bytes counts UDP payload bytes (the length field of the UDP
 * header minus its 8 bytes), the unit TURN accounting and quotas use; it
 * does not depend on link-layer framing, VLAN tags or padding.
 */
struct counter {
	__u64 packets;
	__u64 bytes;
};

/* Per-CPU so the hot path needs no atomics; user space sums over CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CLASS_MAX);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} counters SEC(".maps");

/* count adds one packet of len payload bytes to counter idx. */
static __always_inline void count(__u32 idx, __u64 len)
{
	struct counter *c = bpf_map_lookup_elem(&counters, &idx);
	if (!c)
		return;
	c->packets++;
	c->bytes += len;
}

/*
 * Why the program gave a packet the verdict it did. Every packet the
 * program sees is counted under exactly one reason, in the reasons map;
 * bpf/counters.go mirrors them as Reason (through the bpf2go type). The
 * first four are the verdicts other than XDP_PASS; every reason after them
 * is a pass to the stack, where the user-space relay handles the packet.
 * The reference in bpf/reference_test.go checks them in the same order as
 * relay() in xdp.c. Append before REASON_MAX, never renumber.
 */
enum reason {
	REASON_TX = 0,		    /* relayed out the ingress NIC (XDP_TX) */
	REASON_REDIRECT = 1,	    /* relayed out another NIC (XDP_REDIRECT) */
	REASON_CHANNEL_LENGTH = 2,  /* XDP_DROP: ChannelData longer than its datagram */
	REASON_ABORTED = 3,	    /* XDP_ABORTED: the frame could not be trimmed */
	REASON_MALFORMED = 4,	    /* truncated or invalid Ethernet, IP or UDP header */
	REASON_NOT_IP = 5,	    /* neither IPv4 nor IPv6 (ARP, QinQ, ...) */
	REASON_NOT_UDP = 6,	    /* IP, not UDP */
	REASON_IPV6_EXT = 7,	    /* IPv6 extension header before the transport */
	REASON_FRAGMENT = 8,	    /* IPv4 fragment */
	REASON_OTHER_PORT = 9,	    /* UDP to neither the listen port nor the range */
	REASON_CONTROL = 10,	    /* STUN or other non-ChannelData to the listen port */
	REASON_VLAN = 11,	    /* relayable, but VLAN-tagged */
	REASON_IP_OPTIONS = 12,	    /* relayable, but with IPv4 options */
	REASON_CHANNEL_PADDING = 13, /* more than 3 bytes after the ChannelData */
	REASON_NO_BINDING = 14,	    /* no binding for this datagram */
	REASON_FWD_DISABLED = 15,   /* forwarding is off on the ingress NIC */
	REASON_UNROUTABLE = 16,	    /* no unicast route out (none, blackhole, local) */
	REASON_MTU = 17,	    /* larger than the egress MTU */
	REASON_NO_NEIGH = 18,	    /* next hop's MAC not resolved yet */
	REASON_CSUM_ZERO = 19,	    /* UDP checksum 0 that cannot leave as is */
	REASON_NO_TX_PORT = 20,	    /* egress NIC is not a redirect target */
	REASON_NO_HEADROOM = 21,    /* no room to grow the headers */
	REASON_MAX,
};

/*
 * Per-CPU count of packets and bytes per reason. Unlike counters, bytes
 * here are whole frames as received, link-layer header included: what the
 * NIC handed to XDP.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, REASON_MAX);
	__type(key, enum reason);
	__type(value, struct counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} reasons SEC(".maps");

/* count_reason adds one frame of len bytes to reason r. */
static __always_inline void count_reason(__u32 r, __u64 len)
{
	struct counter *c = bpf_map_lookup_elem(&reasons, &r);
	if (!c)
		return;
	c->packets++;
	c->bytes += len;
}

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/*
 * A datagram arriving at the relay, as the bindings map knows it: its
 * addresses and ports and, for ChannelData, its channel. Addresses are 16
 * bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d); family says which, so
 * an IPv6 packet that carries a mapped address never matches an IPv4
 * binding. Network byte order except family. No implicit padding: Go writes
 * the same bytes (bpf/binding.go).
 *
 *   ChannelData from a client: remote = client, local = the relay's
 *     listen address and port, channel = its channel number;
 *   UDP from a peer: remote = peer, local = the allocation's relayed
 *     address and port, channel = 0.
 */
struct binding_key {
	__be32 remote_addr[4];
	__be32 local_addr[4];
	__be16 remote_port;
	__be16 local_port;
	__be16 channel;
	__u16 family; /* AF_INET or AF_INET6 */
};

/*
 * Where a datagram that matches a binding_key goes: the addresses, ports
 * and channel of the datagram the relay sends. Written by user space.
 *
 *   to a peer:   src = relayed address, dst = peer, channel = 0: the
 *                ChannelData header is stripped;
 *   to a client: src = listen address, dst = client, channel = the
 *                channel whose header is prepended.
 */
struct rewrite {
	__be32 src_addr[4];
	__be32 dst_addr[4];
	__be16 src_port;
	__be16 dst_port;
	__be16 channel;
	__u16 family; /* of src and dst: AF_INET or AF_INET6 */
};

/* A binding's entry: its rewrite, and what went that way (updated by the
 * program; user space writes zeros and reads them). */
struct binding_value {
	struct rewrite out;
	__u64 packets;	    /* datagrams relayed */
	__u64 bytes;	    /* application data relayed, headers excluded */
	__u64 last_seen_ns; /* CLOCK_MONOTONIC (coarse) of the last one */
};

/*
 * Both directions of every channel binding, written by the relay. A plain
 * hash, not LRU: bindings are authoritative state, and an evicted one would
 * silently move its traffic to user space. Load sizes it from
 * Config.MaxBindings (two entries per binding); the value here is only the
 * default of the object file.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * 65536);
	__type(key, struct binding_key);
	__type(value, struct binding_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bindings SEC(".maps");

/* account adds one relayed datagram of len data bytes to binding v. Hash
 * values are shared between CPUs, hence the atomic adds. */
static __always_inline void account(struct binding_value *v, __u64 len,
				    __u64 now)
{
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, len);
	v->last_seen_ns = now;
}

/*
 * The NICs packets may be redirected to, by ifindex (key and value alike).
 * Attach adds a NIC attached in native mode; a NIC with the program in
 * generic mode is no target (a native driver could not transmit to it), so
 * traffic for it takes the stack. Not pinned: ifindexes belong to this load.
 */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} tx_ports SEC(".maps");

#endif /* RELAY_MAPS_H */
