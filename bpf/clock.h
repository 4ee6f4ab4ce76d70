/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The program's clock: CLOCK_MONOTONIC to the tick (what
 * bpf_ktime_get_coarse_ns returns), read from jiffies.
 *
 * Every relayed packet needs the time, for its binding's last_seen_ns and
 * its cached next hop's expiry. bpf_ktime_get_coarse_ns is a helper call,
 * 15-30 ns of a relay path of about 150; the JIT turns bpf_jiffies64 into
 * a single load. Jiffies advance by one tick length of CLOCK_MONOTONIC,
 * so the time is an origin plus whole ticks. User space measures the tick
 * and takes the origin when it loads the program (bpf/clock.go), so the
 * maps keep CLOCK_MONOTONIC nanoseconds and their readers need not know.
 * Without a calibration (tick_ns 0) the program calls the helper; being
 * constants, these let the verifier drop the branch not taken.
 */
#ifndef RELAY_CLOCK_H
#define RELAY_CLOCK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u64 tick_ns = 0;      /* nanoseconds per jiffy; 0: no calibration */
const volatile __u64 origin_jiffies = 0; /* jiffies at origin_ns */
const volatile __u64 origin_ns = 0;    /* CLOCK_MONOTONIC (coarse) then */

/* now_ns is CLOCK_MONOTONIC, coarse: to a tick at most behind. */
static __always_inline __u64 now_ns(void)
{
	if (!tick_ns)
		return bpf_ktime_get_coarse_ns();
	return origin_ns + (bpf_jiffies64() - origin_jiffies) * tick_ns;
}

#endif /* RELAY_CLOCK_H */
