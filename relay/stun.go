package relay

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"

	"github.com/pion/stun/v3"
)

// STUN framing (RFC 8489 section 5).
const (
	headerSize      = 20
	attrHeaderSize  = 4
	magicCookie     = 0x2112A442
	fingerprintSize = attrHeaderSize + 4
)

// Handler answers STUN requests. It is the sans-IO core of the relay: it
// turns one received datagram and its source into the datagram to send back,
// and owns no socket and no clock, so every case can be tested by calling
// Handle. The TURN methods (RFC 8656) grow here; for now it answers Binding.
//
// A Handler keeps scratch buffers between calls so that answering a packet
// does not allocate. It is not safe for concurrent use: give each goroutine
// its own. The zero value is ready to use.
type Handler struct {
	// Software is the text of the SOFTWARE attribute added to every
	// response; empty leaves the attribute out.
	Software string

	req        *stun.Message // the request being answered, decoded in place
	resp       stun.Message  // the response being built
	unknown    stun.UnknownAttributes
	software   stun.Software // Software as bytes, converted once
	softwareOf string        // the Software that software was made from
}

// Handle answers the datagram req received from the address from. It
// appends the response to out and returns the extended slice, as the
// strconv.Append functions do, so the caller can reuse one buffer for every
// packet. When req must not be answered it returns out unchanged; with an
// empty out, an empty result means "send nothing".
//
// Handle never retains req or out and never panics, whatever req holds:
//   - a Binding request gets a success response with XOR-MAPPED-ADDRESS (from,
//     with an IPv4-mapped IPv6 address given as IPv4);
//   - a request with a comprehension-required attribute this server does not
//     understand gets 420 (Unknown Attribute) listing them;
//   - a request for any other method gets 400 (Bad Request);
//   - indications, responses, a FINGERPRINT that does not verify, and
//     anything that is not a well-formed STUN message (ChannelData,
//     truncated or garbage datagrams) are dropped.
//
// Every response carries the request's transaction ID, SOFTWARE (unless
// empty) and FINGERPRINT.
func (h *Handler) Handle(req []byte, from netip.AddrPort, out []byte) []byte {
	if !from.IsValid() || !isRequest(req) {
		return out
	}
	m := h.decode(req)
	if m == nil {
		return out
	}
	defer h.release()

	// The method comes first: a TURN client sending Allocate learns that
	// this server does not do Allocate (400), not that it misses
	// REQUESTED-TRANSPORT (420).
	switch {
	case m.Type.Method != stun.MethodBinding:
		h.begin(m, stun.ClassErrorResponse)
		_ = stun.CodeBadRequest.AddTo(&h.resp)
	case h.findUnknown(m, understoodInBinding):
		h.begin(m, stun.ClassErrorResponse)
		_ = stun.CodeUnknownAttribute.AddTo(&h.resp)
		_ = h.unknown.AddTo(&h.resp)
	default:
		h.begin(m, stun.ClassSuccessResponse)
		addXORMappedAddress(&h.resp, from)
	}
	return h.finish(out)
}

// isRequest reports whether b is one well-formed STUN request whose
// FINGERPRINT, if it has one, verifies. It checks everything the decoder
// would otherwise reject with an error, so that dropping garbage does not
// allocate either.
func isRequest(b []byte) bool {
	// The top two bits are zero in STUN and 01 in ChannelData (RFC 8656
	// section 12.4), which shares the port.
	if len(b) < headerSize || b[0]&0xC0 != 0 || binary.BigEndian.Uint32(b[4:8]) != magicCookie {
		return false
	}
	// Over UDP the datagram is the message: a length that disagrees with
	// it means a corrupt or foreign packet.
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n%4 != 0 || len(b) != headerSize+n {
		return false
	}
	var t stun.MessageType
	t.ReadValue(binary.BigEndian.Uint16(b[0:2]))
	if t.Class != stun.ClassRequest {
		return false
	}
	last, fingerprint := -1, -1
	for off := headerSize; off < len(b); {
		if len(b)-off < attrHeaderSize {
			return false
		}
		typ := stun.AttrType(binary.BigEndian.Uint16(b[off:]))
		size := int(binary.BigEndian.Uint16(b[off+2:]))
		padded := (size + 3) &^ 3
		if len(b)-off-attrHeaderSize < padded {
			return false
		}
		if typ == stun.AttrFingerprint && fingerprint < 0 {
			fingerprint = off
		}
		last = off
		off += attrHeaderSize + padded
	}
	if fingerprint < 0 {
		return true
	}
	// FINGERPRINT must be the last attribute (RFC 8489 section 14.7) and
	// cover everything before it.
	if fingerprint != last || len(b)-fingerprint != fingerprintSize ||
		binary.BigEndian.Uint16(b[fingerprint+2:]) != 4 {
		return false
	}
	return binary.BigEndian.Uint32(b[fingerprint+attrHeaderSize:]) == stun.FingerprintValue(b[:fingerprint])
}

// decode parses req, already checked by isRequest, in place into h.req.
func (h *Handler) decode(req []byte) *stun.Message {
	if h.req == nil {
		// Strict: attributes after MESSAGE-INTEGRITY, other than
		// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, are ignored, as
		// RFC 8489 section 14.5 requires.
		h.req = stun.NewWithOptions(stun.WithStrict(true))
	}
	h.req.Raw = req
	if err := h.req.Decode(); err != nil {
		h.release()
		return nil
	}
	return h.req
}

// release drops the references h.req holds into the caller's buffer.
func (h *Handler) release() {
	h.req.Raw = nil
	clear(h.req.Attributes)
	h.req.Attributes = h.req.Attributes[:0]
}

// findUnknown collects into h.unknown the comprehension-required attributes
// of m (types below 0x8000) that understood does not know, and reports
// whether there were any (RFC 8489 section 6.3.1).
func (h *Handler) findUnknown(m *stun.Message, understood func(stun.AttrType) bool) bool {
	h.unknown = h.unknown[:0]
	for _, a := range m.Attributes {
		if a.Type.Required() && !understood(a.Type) && !slices.Contains(h.unknown, a.Type) {
			h.unknown = append(h.unknown, a.Type)
		}
	}
	return len(h.unknown) > 0
}

// understoodInBinding reports whether a comprehension-required attribute may
// appear in a Binding request to this server. Binding needs no credentials
// here (RFC 8489 section 9 leaves that to the usage), so the authentication
// attributes are understood and ignored. Anything else, such as RFC 5780's
// CHANGE-REQUEST, is unknown: the 420 is how a client learns we lack it.
func understoodInBinding(t stun.AttrType) bool {
	switch t {
	case stun.AttrUsername, stun.AttrUserhash, stun.AttrRealm, stun.AttrNonce,
		stun.AttrMessageIntegrity, stun.AttrMessageIntegritySHA256, stun.AttrPasswordAlgorithm:
		return true
	}
	return false
}

// begin starts in h.resp the response of class class to req.
func (h *Handler) begin(req *stun.Message, class stun.MessageClass) {
	m := &h.resp
	m.Reset()
	m.Type = stun.NewType(req.Type.Method, class)
	m.TransactionID = req.TransactionID
	m.WriteHeader()
}

// finish adds the trailing attributes to h.resp and appends it to out.
func (h *Handler) finish(out []byte) []byte {
	m := &h.resp
	if h.Software != "" {
		if h.softwareOf != h.Software {
			h.software, h.softwareOf = stun.Software(h.Software), h.Software
		}
		// An over-long SOFTWARE (Config.Validate rejects it) is left out
		// rather than sent malformed.
		_ = h.software.AddTo(m)
	}
	_ = stun.Fingerprint.AddTo(m)
	return append(out, m.Raw...)
}

// addXORMappedAddress adds from as XOR-MAPPED-ADDRESS to m.
func addXORMappedAddress(m *stun.Message, from netip.AddrPort) {
	// A dual-stack socket reports IPv4 senders as ::ffff:a.b.c.d; the
	// client knows itself by its IPv4 address. Unmap keeps that explicit;
	// the encoder sends a 16-byte IPv4-mapped address as IPv4 too.
	ip := from.Addr().Unmap().As16()
	a := stun.XORMappedAddress{IP: net.IP(ip[:]), Port: int(from.Port())}
	_ = a.AddTo(m)
}
