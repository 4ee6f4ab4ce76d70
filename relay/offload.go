package relay

import (
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
)

// UDP offload on the user-space path: fewer, larger trips through the
// kernel's UDP stack for a flow's back-to-back datagrams.
//
// Receive (GRO): with UDP_GRO on a socket, the kernel's GRO may join
// datagrams of one flow that arrive in the same NAPI poll, all of one size
// but the last, into one buffer, and says so with a UDP_GRO control
// message giving that size. The worker cuts the buffer into its datagrams
// (no copy) and gives each to the core as if it had come alone; without
// UDP_GRO the kernel would cut it up and queue each datagram itself.
//
// Send (GSO): sendBatch joins consecutive datagrams of a batch from one
// socket to one destination (and from one source, for a wildcard socket),
// of one size but the last, into one message with UDP_SEGMENT: the kernel
// builds one large packet, routes it once and cuts it up at the device,
// or has the NIC do it. The kernel's rules, which add checks before
// joining: at most 64 segments, at most 64 KiB of data, and a segment
// that fits the path's MTU with its headers; and a device without
// checksum offload refuses GSO altogether (EIO). A refused message is
// sent again as its datagrams one by one, so every datagram leaves with
// its bytes and in order whatever the kernel says.

// offloadSwitch says which offloads sockets opened from now on use.
type offloadSwitch struct{ gro, gso bool }

// udpOffload is on: it is no configuration key, since an operator has
// nothing to weigh (what the kernel or the device cannot do is detected
// and left alone). Tests and benchmarks flip it to compare, before a
// relay opens its sockets.
var udpOffload = offloadSwitch{gro: true, gso: true}

const (
	// maxSegments is the kernel's UDP_MAX_SEGMENTS.
	maxSegments = 64
	// maxGSOBytes bounds a GSO message's data: 0xFFFF less the IPv4 and
	// UDP headers, past which the kernel says EMSGSIZE (IPv6 allows 20
	// bytes more).
	maxGSOBytes = 0xFFFF - 20 - 8
)

// gsoSegmentMax is the largest datagram a new socket joins into GSO
// messages: one that fits a 1500-byte MTU with its headers. A segment
// that does not fit the path's MTU is refused (EINVAL) and the budget
// lowered below it; a larger MTU is left unused, since relayed media
// datagrams stay under 1500 bytes anyway.
func gsoSegmentMax(a netip.Addr) int32 {
	if a.Is4() {
		return 1500 - 20 - 8
	}
	return 1500 - 40 - 8
}

// setOffload turns on, for a socket being opened, what udpOffload and o
// ask. Both are optimizations: a kernel without UDP_GRO (before 5.0) or
// UDP_SEGMENT (before 4.18) is no error, the socket just does without.
func (sk *socket) setOffload(fd int, o socketOptions) {
	if udpOffload.gro && !o.noGRO {
		sk.gro = unix.SetsockoptInt(fd, unix.SOL_UDP, unix.UDP_GRO, 1) == nil
	}
	if udpOffload.gso {
		if _, err := unix.GetsockoptInt(fd, unix.SOL_UDP, unix.UDP_SEGMENT); err == nil {
			sk.gsoMax.Store(gsoSegmentMax(sk.local.Addr()))
		}
	}
}

// gsoRefused adapts sk's GSO after the kernel refused a message of
// segment-sized datagrams with err (they were sent again one by one).
func (sk *socket) gsoRefused(err error, segment int) {
	switch {
	case errors.Is(err, unix.EIO):
		// The device lacks transmit checksum offload (or IPsec is in the
		// way): GSO cannot work on this route, so stop trying.
		sk.gsoMax.Store(0)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.EMSGSIZE):
		// The segment does not fit the path's MTU.
		for {
			cur := sk.gsoMax.Load()
			if int(cur) < segment || sk.gsoMax.CompareAndSwap(cur, int32(segment-1)) {
				return
			}
		}
	}
	// Anything else (no route, a firewall) is the datagrams' own.
}

// A generic-mode XDP program runs in the stack after GRO: with UDP_GRO on
// the relay's sockets, GRO would join a flow's bursts of ChannelData
// before the program sees them, and the program would pass them on (one
// datagram's ChannelData, then what looks like excess) to the user-space
// path. So when any NIC runs an XDP program in generic mode, the relay
// leaves UDP_GRO off: turned off on the listen sockets once the data plane
// is known (noGRO), and never turned on for allocation sockets. Native
// mode runs in the driver, before GRO, and keeps it.

// groOff turns UDP_GRO off on sk; datagrams the kernel joined already are
// still cut up by the worker.
func (sk *socket) groOff() {
	if sk.gro && unix.SetsockoptInt(sk.fd, unix.SOL_UDP, unix.UDP_GRO, 0) == nil {
		sk.gro = false
	}
}
