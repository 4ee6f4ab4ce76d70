package proto

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/relaybox/relaybox/relay/auth"
)

// Attribute types (RFC 8489 section 18.3, RFC 8656 section 18).
const (
	attrMappedAddress          = 0x0001
	attrUsername               = 0x0006
	attrMessageIntegrity       = 0x0008
	attrErrorCode              = 0x0009
	attrUnknownAttributes      = 0x000A
	attrChannelNumber          = 0x000C
	attrLifetime               = 0x000D
	attrXORPeerAddress         = 0x0012
	attrData                   = 0x0013
	attrRealm                  = 0x0014
	attrNonce                  = 0x0015
	attrXORRelayedAddress      = 0x0016
	attrRequestedAddressFamily = 0x0017
	attrEvenPort               = 0x0018
	attrRequestedTransport     = 0x0019
	attrDontFragment           = 0x001A
	attrMessageIntegritySHA256 = 0x001C
	attrPasswordAlgorithm      = 0x001D
	attrUserhash               = 0x001E
	attrXORMappedAddress       = 0x0020
	attrReservationToken       = 0x0022

	attrAdditionalAddressFamily = 0x8000
	attrAddressErrorCode        = 0x8001
	attrPasswordAlgorithms      = 0x8002
	attrSoftware                = 0x8022
	attrFingerprint             = 0x8028
)

// known reports whether a comprehension-required attribute type is one this
// relay understands. Any other one below 0x8000 in a request earns a 420
// (RFC 8489 section 6.3.1). Known attributes that a method does not use
// are ignored, as section 6.3 recommends. USERHASH is known but never
// matches: the relay does not offer username anonymity, so a client should
// not send it, and one that does gets a 401.
func known(t uint16) bool {
	switch t {
	case attrMappedAddress, attrUsername, attrMessageIntegrity, attrErrorCode, attrUnknownAttributes,
		attrChannelNumber, attrLifetime, attrXORPeerAddress, attrData, attrRealm, attrNonce,
		attrXORRelayedAddress, attrRequestedAddressFamily, attrEvenPort, attrRequestedTransport,
		attrDontFragment, attrMessageIntegritySHA256, attrPasswordAlgorithm, attrUserhash,
		attrXORMappedAddress, attrReservationToken:
		return true
	}
	return t >= 0x8000
}

// Address families of XOR addresses and the family attributes.
const (
	familyIPv4 = 0x01
	familyIPv6 = 0x02
)

// The protocol number in REQUESTED-TRANSPORT for UDP (RFC 8656 14.7).
const protoUDP = 17

var (
	errAttrLength = errors.New("attribute has the wrong length")
	errFamily     = errors.New("unknown address family")
)

// parseXORAddress decodes an XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS or
// XOR-RELAYED-ADDRESS value (RFC 8489 section 14.2) of a message whose
// transaction ID is txn.
func parseXORAddress(v, txn []byte) (netip.AddrPort, error) {
	if len(v) < 4 {
		return netip.AddrPort{}, errAttrLength
	}
	port := binary.BigEndian.Uint16(v[2:4]) ^ uint16(magicCookie>>16)
	switch v[1] {
	case familyIPv4:
		if len(v) != 8 {
			return netip.AddrPort{}, errAttrLength
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], binary.BigEndian.Uint32(v[4:8])^magicCookie)
		return netip.AddrPortFrom(netip.AddrFrom4(a), port), nil
	case familyIPv6:
		if len(v) != 20 {
			return netip.AddrPort{}, errAttrLength
		}
		var a [16]byte
		binary.BigEndian.PutUint32(a[:], magicCookie)
		copy(a[4:], txn)
		for i := range a {
			a[i] ^= v[4+i]
		}
		return netip.AddrPortFrom(netip.AddrFrom16(a), port), nil
	}
	return netip.AddrPort{}, errFamily
}

// addXORAddress adds a as an XOR address attribute of type t. An
// IPv4-mapped IPv6 address is sent as IPv4: that is the address it means.
func (w *builder) addXORAddress(t uint16, a netip.AddrPort) {
	ip := a.Addr().Unmap()
	n := 8
	if ip.Is6() {
		n = 20
	}
	v := w.reserve(t, n)
	binary.BigEndian.PutUint16(v[2:], a.Port()^uint16(magicCookie>>16))
	if ip.Is4() {
		v[1] = familyIPv4
		b := ip.As4()
		binary.BigEndian.PutUint32(v[4:], binary.BigEndian.Uint32(b[:])^magicCookie)
		return
	}
	v[1] = familyIPv6
	b := ip.As16()
	binary.BigEndian.PutUint32(v[4:], magicCookie)
	copy(v[8:], w.b[w.start+8:w.start+headerLen])
	for i := range b {
		v[4+i] ^= b[i]
	}
}

// parseRequestedTransport returns the protocol of a REQUESTED-TRANSPORT
// value (RFC 8656 section 18.10).
func parseRequestedTransport(v []byte) (uint8, error) {
	if len(v) != 4 {
		return 0, errAttrLength
	}
	return v[0], nil
}

// parseUint32 decodes LIFETIME (RFC 8656 section 18.2): seconds.
func parseUint32(v []byte) (uint32, error) {
	if len(v) != 4 {
		return 0, errAttrLength
	}
	return binary.BigEndian.Uint32(v), nil
}

// parseChannelNumber decodes CHANNEL-NUMBER (RFC 8656 section 18.1). The
// range check is the caller's.
func parseChannelNumber(v []byte) (uint16, error) {
	if len(v) != 4 {
		return 0, errAttrLength
	}
	return binary.BigEndian.Uint16(v), nil
}

// parseFamily decodes REQUESTED-ADDRESS-FAMILY or ADDITIONAL-ADDRESS-FAMILY
// (RFC 8656 sections 18.6 and 18.12): 0x01 IPv4, 0x02 IPv6. Another value
// is returned as is for the caller to refuse with the code its method gives.
func parseFamily(v []byte) (uint8, error) {
	if len(v) != 4 {
		return 0, errAttrLength
	}
	return v[0], nil
}

// parseEvenPort decodes EVEN-PORT (RFC 8656 section 18.8): whether the R
// bit asks to reserve the next port too.
func parseEvenPort(v []byte) (reserve bool, err error) {
	if len(v) != 1 {
		return false, errAttrLength
	}
	return v[0]&0x80 != 0, nil
}

// parseReservationToken decodes RESERVATION-TOKEN (RFC 8656 section 18.9).
func parseReservationToken(v []byte) ([8]byte, error) {
	if len(v) != 8 {
		return [8]byte{}, errAttrLength
	}
	return [8]byte(v), nil
}

// parsePasswordAlgorithm decodes PASSWORD-ALGORITHM (RFC 8489 section
// 14.12): an algorithm and its parameters, which MD5 and SHA-256 lack.
func parsePasswordAlgorithm(v []byte) (auth.Algorithm, error) {
	if len(v) < 4 {
		return 0, errAttrLength
	}
	n := int(binary.BigEndian.Uint16(v[2:4]))
	if len(v) != 4+n {
		return 0, errAttrLength
	}
	return auth.Algorithm(binary.BigEndian.Uint16(v)), nil
}

// passwordAlgorithmsContain reports whether a PASSWORD-ALGORITHMS value
// (RFC 8489 section 14.11: algorithm, parameter length, parameters padded
// to 4, repeated) is well formed and lists alg.
func passwordAlgorithmsContain(v []byte, alg auth.Algorithm) (bool, error) {
	found := false
	for len(v) > 0 {
		if len(v) < 4 {
			return false, errAttrLength
		}
		n := padded(int(binary.BigEndian.Uint16(v[2:4])))
		if len(v)-4 < n {
			return false, errAttrLength
		}
		found = found || auth.Algorithm(binary.BigEndian.Uint16(v)) == alg
		v = v[4+n:]
	}
	return found, nil
}

// offeredAlgorithms is the PASSWORD-ALGORITHMS value of every challenge:
// SHA-256 first, the relay's preference, then MD5 for RFC 5389 clients.
var offeredAlgorithms = []byte{0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}

// errorReasons are the reason phrases of authenticated error responses;
// unauthenticated ones carry none, to stay small.
var errorReasons = map[int]string{
	400: "Bad Request",
	401: "Unauthenticated",
	403: "Forbidden",
	420: "Unknown Attribute",
	437: "Allocation Mismatch",
	438: "Stale Nonce",
	440: "Address Family not Supported",
	441: "Wrong Credentials",
	442: "Unsupported Transport Protocol",
	443: "Peer Address Family Mismatch",
	486: "Allocation Quota Reached",
	500: "Server Error",
	508: "Insufficient Capacity",
}

// addErrorCode adds ERROR-CODE (RFC 8489 section 14.8).
func (w *builder) addErrorCode(code int, reason string) {
	v := w.reserve(attrErrorCode, 4+len(reason))
	v[2] = byte(code / 100)
	v[3] = byte(code % 100)
	copy(v[4:], reason)
}

// addAddressErrorCode adds ADDRESS-ERROR-CODE (RFC 8656 section 18.13):
// the family that could not be allocated and why.
func (w *builder) addAddressErrorCode(family uint8, code int, reason string) {
	v := w.reserve(attrAddressErrorCode, 4+len(reason))
	v[0] = family
	v[2] = byte(code / 100)
	v[3] = byte(code % 100)
	copy(v[4:], reason)
}

// addUnknownAttributes adds UNKNOWN-ATTRIBUTES (RFC 8489 section 14.9).
func (w *builder) addUnknownAttributes(types []uint16) {
	v := w.reserve(attrUnknownAttributes, 2*len(types))
	for i, t := range types {
		binary.BigEndian.PutUint16(v[2*i:], t)
	}
}
