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

/*
 * Where a binding's datagrams left last time, as bpf_fib_lookup found it,
 * kept in the binding's value so that most packets need no FIB lookup:
 * that lookup costs more than the rest of the relay path together (IPv6
 * the most), and the value is looked up anyway. Filled by the program
 * from the FIB's answer, whatever it was (rc), except "too big"
 * (BPF_FIB_LKUP_RET_FRAG_NEEDED), which depends on the datagram's size:
 * so a binding whose peer has no neighbour or no route yet costs one
 * lookup per (short) expiry too, not one per packet. User space writes
 * zeros: empty.
 *
 * The program uses it for a packet from the NIC it was looked up for
 * (forwarding and policy routing depend on the ingress NIC) until
 * expires_ns, and for a datagram of at most mtu bytes: a larger one asks
 * the FIB, which decides REASON_MTU as without the cache. After a failure
 * that bound is the size asked (the FIB checks the MTU before the
 * neighbour); for a datagram that stays here there is none.
 *
 * rc BPF_FIB_LKUP_RET_NOT_FWDED means the datagram stays on this host:
 * the binding's peer is an allocation of this relay, and relay() in xdp.c
 * looks up its binding, or the peer is another local address.
 */
struct next_hop {
	__u64 expires_ns;      /* CLOCK_MONOTONIC (coarse); 0: empty */
	__u32 ingress_ifindex; /* NIC the lookup was made for */
	__u32 ifindex;	       /* egress NIC, on success */
	__u8 smac[6];
	__u8 dmac[6];
	__u16 mtu; /* largest IP datagram it serves: out of ifindex, mtu_result */
	__u16 rc;  /* the FIB's answer: BPF_FIB_LKUP_RET_* */
};

/* A binding's entry: its rewrite, what went that way and where it went
 * (updated by the program; user space writes zeros and reads them). */
struct binding_value {
	struct rewrite out;
	__u64 packets;	    /* datagrams relayed */
	__u64 bytes;	    /* application data relayed, headers excluded */
	__u64 last_seen_ns; /* CLOCK_MONOTONIC (coarse) of the last one */
	struct next_hop hop;
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
 * hop_get copies v's next hop to h and returns 1 if it may serve a packet
 * that arrived on ingress at now: filled for that NIC and not expired.
 *
 * Another CPU may be refilling it meanwhile (hop_put). expires_ns, read
 * before and after the copy, tells: hop_put clears it first and sets it
 * last, and only once it has expired, so to a later time. What remains
 * is two CPUs refilling at once, and they write the same lookup's answer
 * unless the route changed in between: then at worst one datagram goes
 * out with a mix of the old and the new next hop. On CPUs that reorder
 * loads (the JIT adds no barriers) that mix is the worst case too.
 */
static __always_inline int hop_get(struct binding_value *v, __u32 ingress,
				   __u64 now, struct next_hop *h)
{
	__u64 expires = *(volatile __u64 *)&v->hop.expires_ns;
	if (now >= expires)
		return 0;
	barrier();
	*h = v->hop;
	barrier();
	if (*(volatile __u64 *)&v->hop.expires_ns != expires)
		return 0;
	return h->ingress_ifindex == ingress;
}

/*
 * hop_put stores h in v unless v's next hop is still fresh at now: the
 * first CPU to refill it after it expired wins, and an entry for another
 * NIC or a smaller MTU stays until it expires, so that its users do not
 * take turns overwriting it.
 */
static __always_inline void hop_put(struct binding_value *v,
				    const struct next_hop *h, __u64 now)
{
	if (now < *(volatile __u64 *)&v->hop.expires_ns)
		return;
	*(volatile __u64 *)&v->hop.expires_ns = 0;
	barrier();
	/* Everything after expires_ns, its first field. */
	__builtin_memcpy(&v->hop.ingress_ifindex, &h->ingress_ifindex,
			 sizeof(*h) - sizeof(h->expires_ns));
	barrier();
	*(volatile __u64 *)&v->hop.expires_ns = h->expires_ns;
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
