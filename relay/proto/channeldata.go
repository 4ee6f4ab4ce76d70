package proto

import "encoding/binary"

// ChannelData framing (RFC 8656 section 12.4): a 2-byte channel number, a
// 2-byte length, the application data.
const channelDataHeaderLen = 4

// Channel numbers. RFC 8656 gives clients 0x4000–0x4FFF; RFC 5766 allowed
// up to 0x7FFF and older clients still use it, so both are accepted. Those
// are exactly the numbers whose top two bits are 01, which is how ChannelData
// is told from STUN (00) on the same port.
const (
	MinChannel = 0x4000
	MaxChannel = 0x7FFF
)

// parseChannelData splits a ChannelData datagram. Bytes after the claimed
// length are padding (RFC 8656 section 12.5 allows it over UDP) and are
// ignored; a datagram too short for its length is not ChannelData.
func parseChannelData(b []byte) (channel uint16, payload []byte, ok bool) {
	if len(b) < channelDataHeaderLen {
		return 0, nil, false
	}
	channel = binary.BigEndian.Uint16(b)
	if channel < MinChannel || channel > MaxChannel {
		return 0, nil, false
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if len(b)-channelDataHeaderLen < n {
		return 0, nil, false
	}
	return channel, b[channelDataHeaderLen : channelDataHeaderLen+n : channelDataHeaderLen+n], true
}

// putChannelData writes a ChannelData header for channel and n bytes of
// data into b. Over UDP the relay sends no padding (RFC 8656 section 12.5
// makes it optional), which is also what the XDP path sends, so both paths
// produce the same datagram.
func putChannelData(b []byte, channel uint16, n int) {
	binary.BigEndian.PutUint16(b, channel)
	binary.BigEndian.PutUint16(b[2:], uint16(n))
}
