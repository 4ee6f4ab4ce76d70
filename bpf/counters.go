//go:build linux

package bpf

import "fmt"

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

// Counter counts packets and their UDP payload bytes (the UDP header's
// length field minus its 8 bytes: no link-layer framing, VLAN tag or
// padding).
type Counter struct {
	Packets, Bytes uint64
}

// Counters returns every class's counter, summed over CPUs. Packets the
// program did not classify (other ports, non-UDP, fragments, IPv6 extension
// headers, malformed headers) are in none of them.
func (p *Program) Counters() (map[Class]Counter, error) {
	out := make(map[Class]Counter, numClasses)
	var perCPU []relayCounter // one per possible CPU, sized by Lookup
	for c := range numClasses {
		key := uint32(c)
		if err := p.objs.Counters.Lookup(&key, &perCPU); err != nil {
			return nil, fmt.Errorf("read xdp counter %s: %w", c, err)
		}
		var sum Counter
		for _, v := range perCPU {
			sum.Packets += v.Packets
			sum.Bytes += v.Bytes
		}
		out[c] = sum
	}
	return out, nil
}
