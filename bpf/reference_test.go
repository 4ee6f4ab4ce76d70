//go:build linux

package bpf

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// The Go reference of relay_xdp: what the program must do with a frame,
// written from the protocol rather than from the C. It looks bindings up
// by their meaning (a []Binding, not the map encoding), builds the output
// frame from scratch and computes the UDP checksum over the whole datagram
// instead of incrementally. The differential tests run both on the same
// frames and require the same verdict and bytes.
//
// The checks come in the order of relay() in xdp.c; that order decides
// which reason a packet with several faults is counted under.

// Codes of bpf_fib_lookup (BPF_FIB_LKUP_RET_*).
const (
	fibSuccess     = 0
	fibBlackhole   = 1
	fibNotFwded    = 4
	fibFwdDisabled = 5
	fibNoNeigh     = 7
	fibFragNeeded  = 8
)

// fibQuery is what the program asks bpf_fib_lookup: where a datagram of
// l3Len bytes (IP header on) from src to dst goes.
type fibQuery struct {
	src, dst netip.Addr
	l3Len    int
}

type fibResult struct {
	rc         int
	ifindex    int
	smac, dmac net.HardwareAddr
}

// refEnv is what the program sees besides the frame.
type refEnv struct {
	cfg      Config
	bindings []Binding // the installed bindings, normalized
	ingress  int       // ifindex the frame arrives on
	fib      func(fibQuery) fibResult
	txPorts  map[int]bool // NICs in the tx_ports devmap
}

// refResult is the reference's outcome for one frame.
type refResult struct {
	verdict Verdict
	reason  Reason
	out     []byte // the frame as the program leaves it

	class      Class // -1 if not classified
	classBytes uint64

	// relayed lists the binding directions that counted the datagram
	// (two when both ends are clients of the relay), and data its bytes.
	relayed []refDirection
	data    int
}

type refDirection struct {
	b      Binding
	toPeer bool
}

// reference runs the model of relay_xdp on frame.
func reference(env *refEnv, frame []byte) refResult {
	r := refResult{class: -1}
	r.reason = r.relay(env, frame)
	r.verdict = r.reason.Verdict()
	if r.out == nil {
		r.out = append([]byte(nil), frame...)
	}
	return r
}

// ipv6Ext are the next-header values the program treats as extension
// headers (ipv6_is_ext in parse.h).
var ipv6Ext = map[byte]bool{0: true, 43: true, 44: true, 50: true, 51: true, 60: true, 135: true, 139: true, 140: true, 253: true, 254: true}

// refOut is a datagram the relay sends.
type refOut struct {
	src, dst netip.AddrPort
	channel  uint16 // 0: plain UDP to a peer
}

func (o refOut) l3Len(data int) int {
	n := 8 + data
	if o.dst.Addr().Is4() {
		n += 20
	} else {
		n += 40
	}
	if o.channel != 0 {
		n += 4
	}
	return n
}

func (r *refResult) relay(env *refEnv, f []byte) Reason {
	be16 := func(off int) uint16 { return binary.BigEndian.Uint16(f[off:]) }

	// Ethernet, at most one VLAN tag.
	if len(f) < 14 {
		return ReasonMalformed
	}
	etype, l3 := be16(12), 14
	if etype == 0x8100 || etype == 0x88A8 {
		if len(f) < 18 {
			return ReasonMalformed
		}
		etype, l3 = be16(16), 18
	}
	tagged := l3 != 14

	// IP.
	var src, dst netip.Addr
	var proto byte
	var l4 int
	v4 := etype == 0x0800
	switch etype {
	case 0x0800:
		if len(f) < l3+20 {
			return ReasonMalformed
		}
		hl := int(f[l3]&0x0F) * 4
		if hl < 20 || l3+hl > len(f) {
			return ReasonMalformed
		}
		if be16(l3+6)&0x3FFF != 0 {
			return ReasonFragment
		}
		proto = f[l3+9]
		src = netip.AddrFrom4([4]byte(f[l3+12 : l3+16]))
		dst = netip.AddrFrom4([4]byte(f[l3+16 : l3+20]))
		l4 = l3 + hl
	case 0x86DD:
		if len(f) < l3+40 {
			return ReasonMalformed
		}
		proto = f[l3+6]
		if ipv6Ext[proto] {
			return ReasonIPv6Ext
		}
		src = netip.AddrFrom16([16]byte(f[l3+8 : l3+24]))
		dst = netip.AddrFrom16([16]byte(f[l3+24 : l3+40]))
		l4 = l3 + 40
	default:
		return ReasonNotIP
	}
	if proto != 17 {
		return ReasonNotUDP
	}

	// UDP, with its length field as the datagram's end.
	if len(f) < l4+8 {
		return ReasonMalformed
	}
	udpLen := int(be16(l4 + 4))
	if udpLen < 8 || l4+udpLen > len(f) {
		return ReasonMalformed
	}
	sport, dport := be16(l4), be16(l4+2)
	pl := l4 + 8
	plen := udpLen - 8
	payload := f[pl : pl+plen]

	// Classification.
	inRange := func(p uint16) bool { return p >= env.cfg.PortMin && p <= env.cfg.PortMax }
	switch {
	case dport == env.cfg.ListenPort && plen >= 20 && payload[0]&0xC0 == 0 && binary.BigEndian.Uint32(payload[4:]) == 0x2112A442:
		r.class = ClassSTUN
	case dport == env.cfg.ListenPort && plen >= 4 && payload[0] >= 0x40 && payload[0] <= 0x7F:
		r.class = ClassChannelData
	case dport == env.cfg.ListenPort:
		r.class = ClassOther
	case inRange(dport):
		r.class = ClassAllocation
	default:
		return ReasonOtherPort
	}
	r.classBytes = uint64(plen)
	if r.class == ClassSTUN || r.class == ClassOther {
		return ReasonControl
	}

	// What a fresh header must not launder.
	if tagged {
		return ReasonVLAN
	}
	if v4 {
		if f[l3]&0x0F != 5 {
			return ReasonIPOptions
		}
		totLen := int(be16(l3 + 2))
		if f[l3]>>4 != 4 || totLen < 20+udpLen || l3+totLen > len(f) || onesSum(f[l3:l3+20]) != 0xFFFF {
			return ReasonMalformed
		}
	} else {
		pLen := int(be16(l3 + 4))
		if f[l3]>>4 != 6 || pLen < udpLen || l3+40+pLen > len(f) {
			return ReasonMalformed
		}
	}
	check := be16(l4 + 6)

	from := netip.AddrPortFrom(src, sport)
	to := netip.AddrPortFrom(dst, dport)
	data := payload
	var out refOut
	var first Binding
	found := false
	if r.class == ClassChannelData {
		n := int(binary.BigEndian.Uint16(payload[2:]))
		if n+4 > plen {
			return ReasonChannelLength
		}
		if n > 0x3FFF { // MAX_FRAME_DATA: unreachable with real frames
			return ReasonMalformed
		}
		if plen-4-n > 3 {
			return ReasonChannelPadding
		}
		data = payload[4 : 4+n]
		channel := binary.BigEndian.Uint16(payload)
		for _, b := range env.bindings {
			if b.Client == from && b.Server == to && b.Channel == channel {
				first, found, out = b, true, refOut{src: b.Relay, dst: b.Peer}
				break
			}
		}
	} else {
		for _, b := range env.bindings {
			if b.Peer == from && b.Relay == to {
				first, found, out = b, true, refOut{src: b.Server, dst: b.Client, channel: b.Channel}
				break
			}
		}
	}
	if !found {
		return ReasonNoBinding
	}
	r.relayed = []refDirection{{first, out.channel == 0}}

	hop := env.fib(fibQuery{out.src.Addr(), out.dst.Addr(), out.l3Len(len(data))})
	if hop.rc == fibNotFwded && out.channel == 0 && inRange(out.dst.Port()) {
		// The peer is an allocation of this relay: on to its client.
		found = false
		for _, b := range env.bindings {
			if b.Peer == out.src && b.Relay == out.dst {
				r.relayed = append(r.relayed, refDirection{b, false})
				out, found = refOut{src: b.Server, dst: b.Client, channel: b.Channel}, true
				break
			}
		}
		if !found {
			r.relayed = nil
			return ReasonNoBinding
		}
		hop = env.fib(fibQuery{out.src.Addr(), out.dst.Addr(), out.l3Len(len(data))})
	}
	fail := func(reason Reason) Reason {
		r.relayed = nil
		return reason
	}
	switch hop.rc {
	case fibSuccess:
	case fibFwdDisabled:
		return fail(ReasonFwdDisabled)
	case fibFragNeeded:
		return fail(ReasonMTU)
	case fibNoNeigh:
		return fail(ReasonNoNeigh)
	default:
		return fail(ReasonUnroutable)
	}
	if check == 0 && (!v4 || out.dst.Addr().Is6()) {
		return fail(ReasonCsumZero)
	}
	reason := ReasonTX
	if hop.ifindex != env.ingress {
		if !env.txPorts[hop.ifindex] {
			return fail(ReasonNoTXPort)
		}
		reason = ReasonRedirect
	}

	// The new datagram. Its checksum carries over whatever error the
	// received one had: the kernel path never reads the whole payload,
	// and a receiver drops a corrupt datagram either way.
	udp := make([]byte, 8, 12+len(data))
	binary.BigEndian.PutUint16(udp[0:], out.src.Port())
	binary.BigEndian.PutUint16(udp[2:], out.dst.Port())
	if out.channel != 0 {
		udp = binary.BigEndian.AppendUint16(udp, out.channel)
		udp = binary.BigEndian.AppendUint16(udp, uint16(len(data)))
	}
	udp = append(udp, data...)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	if check != 0 {
		residual := onesSum(pseudoHeader(src, dst, udpLen), f[l4:l4+udpLen])
		sum := onesSum(pseudoHeader(out.src.Addr(), out.dst.Addr(), len(udp)), udp)
		binary.BigEndian.PutUint16(udp[6:], onesAdd(residual, ^sum))
	}

	frame := append(append([]byte(nil), hop.dmac...), hop.smac...)
	if out.dst.Addr().Is4() {
		frame = append(frame, 0x08, 0x00)
		ip := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0}
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
		ip = append(append(ip, out.src.Addr().AsSlice()...), out.dst.Addr().AsSlice()...)
		binary.BigEndian.PutUint16(ip[10:], ^onesSum(ip))
		frame = append(frame, ip...)
	} else {
		frame = append(frame, 0x86, 0xDD)
		ip := []byte{0x60, 0, 0, 0, 0, 0, 17, 64}
		binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)))
		ip = append(append(ip, out.src.Addr().AsSlice()...), out.dst.Addr().AsSlice()...)
		frame = append(frame, ip...)
	}
	r.out = append(frame, udp...)
	r.data = len(data)
	return reason
}

// pseudoHeader is the part of the IP header the UDP checksum covers.
func pseudoHeader(src, dst netip.Addr, udpLen int) []byte {
	p := append(src.AsSlice(), dst.AsSlice()...)
	if src.Is4() {
		return append(p, 0, 17, byte(udpLen>>8), byte(udpLen))
	}
	return append(p, 0, 0, byte(udpLen>>8), byte(udpLen), 0, 0, 0, 17)
}

// onesSum is the 16-bit one's-complement sum of the bytes in order, an odd
// last byte padded with zero (RFC 1071). Each part is summed from an even
// offset.
func onesSum(parts ...[]byte) uint16 {
	var s uint32
	for _, b := range parts {
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			s += uint32(b[len(b)-1]) << 8
		}
	}
	for s > 0xFFFF {
		s = s&0xFFFF + s>>16
	}
	return uint16(s)
}

// onesAdd adds two 16-bit values in one's complement.
func onesAdd(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s&0xFFFF + s>>16)
}
