/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Maps shared between the XDP program and user space (bpf/xdp.go), and the
 * helpers that update them.
 *
 * Maps are pinned by name: loaded with a pin path, a map whose pin already
 * exists is reused, so counters (and later the relay's bindings) survive a
 * reload of the program.
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

#endif /* RELAY_MAPS_H */
