//go:build linux

package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// Class is what the XDP program took a packet addressed to the relay for.
// The values are the indexes of the counters map (enum pkt_class in maps.h).
type Class int

const (
	// ClassSTUN is a STUN message (requests, indications) to the listen port.
	ClassSTUN Class = iota
	// ClassChannelData is a ChannelData message to the listen port.
	ClassChannelData
	// ClassAllocation is any UDP datagram to a port of the allocation range.
	ClassAllocation
	// ClassOther is any other UDP datagram to the listen port.
	ClassOther

	numClasses
)

var classNames = [numClasses]string{
	ClassSTUN:        "stun",
	ClassChannelData: "channel_data",
	ClassAllocation:  "allocation",
	ClassOther:       "other",
}

// String returns the class's name as logs and metric labels use it.
func (c Class) String() string {
	if c < 0 || c >= numClasses {
		return fmt.Sprintf("Class(%d)", int(c))
	}
	return classNames[c]
}

// Counter counts packets and bytes. In the class counters bytes are UDP
// payload (the UDP header's length field minus its 8 bytes: no link-layer
// framing, VLAN tag or padding); in the reason counters they are whole
// frames as the NIC delivered them.
type Counter struct {
	Packets, Bytes uint64
}

// Verdict is an XDP program's verdict on a packet (enum xdp_action).
type Verdict uint32

const (
	VerdictAborted  Verdict = 0 // dropped as a program error (XDP_ABORTED)
	VerdictDrop     Verdict = 1 // XDP_DROP
	VerdictPass     Verdict = 2 // on to the stack (XDP_PASS)
	VerdictTX       Verdict = 3 // out the ingress NIC (XDP_TX)
	VerdictRedirect Verdict = 4 // out another NIC (XDP_REDIRECT)
)

var verdictNames = []string{"aborted", "drop", "pass", "tx", "redirect"}

// String returns the verdict's name: "aborted", "drop", "pass", "tx" or
// "redirect".
func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("Verdict(%d)", uint32(v))
}

// Reason is why the XDP program gave a packet its verdict. Every packet the
// program sees is counted under exactly one reason. The values are the
// indexes of the reasons map (enum reason in maps.h, through bpf2go).
type Reason uint32

const (
	// ReasonTX: relayed, out the NIC it came in by.
	ReasonTX = Reason(relayReasonREASON_TX)
	// ReasonRedirect: relayed, out another NIC.
	ReasonRedirect = Reason(relayReasonREASON_REDIRECT)
	// ReasonChannelLength: dropped, a ChannelData length longer than its
	// datagram (user space drops it too).
	ReasonChannelLength = Reason(relayReasonREASON_CHANNEL_LENGTH)
	// ReasonAborted: dropped, the rewritten frame could not be trimmed (a
	// bug or a driver limit; never seen).
	ReasonAborted = Reason(relayReasonREASON_ABORTED)

	// The reasons below pass the packet to the stack untouched.

	// ReasonMalformed: truncated or invalid Ethernet, IP or UDP header
	// (bad version, lengths or IPv4 header checksum).
	ReasonMalformed = Reason(relayReasonREASON_MALFORMED)
	// ReasonNotIP: neither IPv4 nor IPv6 (ARP, double VLAN tags, ...).
	ReasonNotIP = Reason(relayReasonREASON_NOT_IP)
	// ReasonNotUDP: IP other than UDP.
	ReasonNotUDP = Reason(relayReasonREASON_NOT_UDP)
	// ReasonIPv6Ext: IPv6 with extension headers.
	ReasonIPv6Ext = Reason(relayReasonREASON_IPV6EXT)
	// ReasonFragment: an IPv4 fragment.
	ReasonFragment = Reason(relayReasonREASON_FRAGMENT)
	// ReasonOtherPort: UDP to neither the listen port nor the allocation
	// range.
	ReasonOtherPort = Reason(relayReasonREASON_OTHER_PORT)
	// ReasonControl: STUN, or anything but ChannelData, to the listen port.
	ReasonControl = Reason(relayReasonREASON_CONTROL)
	// ReasonVLAN: relayable, but VLAN-tagged.
	ReasonVLAN = Reason(relayReasonREASON_VLAN)
	// ReasonIPOptions: relayable, but with IPv4 options.
	ReasonIPOptions = Reason(relayReasonREASON_IP_OPTIONS)
	// ReasonChannelPadding: more than 3 bytes after the ChannelData.
	ReasonChannelPadding = Reason(relayReasonREASON_CHANNEL_PADDING)
	// ReasonNoBinding: no binding for the datagram (or, when both ends
	// are clients of this relay, none at the receiving allocation).
	ReasonNoBinding = Reason(relayReasonREASON_NO_BINDING)
	// ReasonFwdDisabled: forwarding is off on the ingress NIC, so
	// bpf_fib_lookup refuses (set net.ipv4.conf.<nic>.forwarding and
	// net.ipv6.conf.<nic>.forwarding).
	ReasonFwdDisabled = Reason(relayReasonREASON_FWD_DISABLED)
	// ReasonUnroutable: no unicast route out for the rewritten datagram
	// (no route, blackhole, unreachable, prohibit, a local address).
	ReasonUnroutable = Reason(relayReasonREASON_UNROUTABLE)
	// ReasonMTU: the rewritten datagram is larger than the egress MTU.
	ReasonMTU = Reason(relayReasonREASON_MTU)
	// ReasonNoNeigh: the next hop's MAC address is not resolved yet; the
	// stack's send resolves it for the packets after.
	ReasonNoNeigh = Reason(relayReasonREASON_NO_NEIGH)
	// ReasonCsumZero: a UDP checksum of 0 that cannot leave as it is
	// (IPv6 forbids it).
	ReasonCsumZero = Reason(relayReasonREASON_CSUM_ZERO)
	// ReasonNoTXPort: the egress NIC is no redirect target (not attached
	// in native mode).
	ReasonNoTXPort = Reason(relayReasonREASON_NO_TX_PORT)
	// ReasonNoHeadroom: the driver left no room to grow the headers.
	ReasonNoHeadroom = Reason(relayReasonREASON_NO_HEADROOM)

	numReasons = Reason(relayReasonREASON_MAX)
)

var reasonNames = [numReasons]string{
	ReasonTX:             "tx",
	ReasonRedirect:       "redirect",
	ReasonChannelLength:  "channel_length",
	ReasonAborted:        "aborted",
	ReasonMalformed:      "malformed",
	ReasonNotIP:          "not_ip",
	ReasonNotUDP:         "not_udp",
	ReasonIPv6Ext:        "ipv6_ext",
	ReasonFragment:       "fragment",
	ReasonOtherPort:      "other_port",
	ReasonControl:        "control",
	ReasonVLAN:           "vlan",
	ReasonIPOptions:      "ip_options",
	ReasonChannelPadding: "channel_padding",
	ReasonNoBinding:      "no_binding",
	ReasonFwdDisabled:    "fwd_disabled",
	ReasonUnroutable:     "unroutable",
	ReasonMTU:            "mtu",
	ReasonNoNeigh:        "no_neigh",
	ReasonCsumZero:       "csum_zero",
	ReasonNoTXPort:       "no_tx_port",
	ReasonNoHeadroom:     "no_headroom",
}

// String returns the reason's name as logs and metric labels use it.
func (r Reason) String() string {
	if r >= numReasons {
		return fmt.Sprintf("Reason(%d)", uint32(r))
	}
	return reasonNames[r]
}

// Verdict returns the verdict the program gives a packet for reason r.
func (r Reason) Verdict() Verdict {
	switch r {
	case ReasonTX:
		return VerdictTX
	case ReasonRedirect:
		return VerdictRedirect
	case ReasonChannelLength:
		return VerdictDrop
	case ReasonAborted:
		return VerdictAborted
	}
	return VerdictPass
}

// Counters returns every class's counter, summed over CPUs. Packets the
// program did not classify (other ports, non-UDP, fragments, IPv6 extension
// headers, malformed headers) are in none of them.
func (m *Maps) Counters() (map[Class]Counter, error) {
	out := make(map[Class]Counter, numClasses)
	for c := range numClasses {
		sum, err := sumPerCPU(m.counters, uint32(c))
		if err != nil {
			return nil, fmt.Errorf("read xdp counter %s: %w", c, err)
		}
		out[c] = sum
	}
	return out, nil
}

// Reasons returns every reason's counter, summed over CPUs: each packet the
// program saw is in exactly one.
func (m *Maps) Reasons() (map[Reason]Counter, error) {
	out := make(map[Reason]Counter, numReasons)
	for r := range numReasons {
		sum, err := sumPerCPU(m.reasons, uint32(r))
		if err != nil {
			return nil, fmt.Errorf("read xdp reason counter %s: %w", r, err)
		}
		out[r] = sum
	}
	return out, nil
}

func sumPerCPU(m *ebpf.Map, key uint32) (Counter, error) {
	var perCPU []relayCounter // one per possible CPU, sized by Lookup
	if err := m.Lookup(&key, &perCPU); err != nil {
		return Counter{}, err
	}
	var sum Counter
	for _, v := range perCPU {
		sum.Packets += v.Packets
		sum.Bytes += v.Bytes
	}
	return sum, nil
}
