package proto

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"hash/crc32"
	"slices"
)

// STUN framing (RFC 8489 section 5 and 14).
const (
	headerLen      = 20
	attrHeaderLen  = 4
	magicCookie    = 0x2112A442
	fingerprintXOR = 0x5354554e
	txnLen         = 12
	sha1Len        = 20

	// maxAttrs bounds the attributes of a request this relay looks at. A
	// real request has about ten; more is a crafted packet, dropped so that
	// parsing stays allocation-free and bounded.
	maxAttrs = 40
)

// method is a STUN method (RFC 8489 section 5, RFC 8656 section 17).
type method uint16

const (
	methodBinding          method = 0x001
	methodAllocate         method = 0x003
	methodRefresh          method = 0x004
	methodSend             method = 0x006
	methodData             method = 0x007
	methodCreatePermission method = 0x008
	methodChannelBind      method = 0x009
)

// class is a STUN message class.
type class uint8

const (
	classRequest    class = 0
	classIndication class = 1
	classSuccess    class = 2
	classError      class = 3
)

// messageType is the 14-bit type with the class bits interleaved into the
// method (RFC 8489 section 5, figure 3).
func messageType(m method, c class) uint16 {
	return uint16(m&0xF) | uint16(m&0x70)<<1 | uint16(m&0xF80)<<2 | uint16(c&1)<<4 | uint16(c&2)<<7
}

func splitType(t uint16) (method, class) {
	m := method(t&0xF | (t>>1)&0x70 | (t>>2)&0xF80)
	c := class((t>>4)&1 | (t>>7)&2)
	return m, c
}

// Why a datagram is not a message worth looking at. All are dropped
// silently: answering garbage helps only scanners.
var (
	errNotSTUN         = errors.New("not a STUN message")
	errMalformed       = errors.New("malformed STUN message")
	errTooManyAttrs    = errors.New("too many attributes")
	errBadFingerprint  = errors.New("FINGERPRINT does not match")
	errFingerprintLast = errors.New("attribute after FINGERPRINT")
)

// attr is one attribute of a parsed message: its type and where its header
// and value are in the raw bytes.
type attr struct {
	typ   uint16
	start int // offset of the attribute header
	off   int // offset of the value
	n     int // value length, without padding
}

// message is a STUN message parsed in place: it holds offsets into raw and
// never copies it, so parsing allocates nothing.
type message struct {
	raw    []byte
	method method
	class  class
	attrs  []attr // the attributes to process; see parse
	buf    [maxAttrs]attr

	hasFingerprint bool
}

func (m *message) txn() []byte { return m.raw[8:headerLen] }

// parse parses b, one UDP datagram, into m. Over UDP the datagram is the
// message, so a length that disagrees with it is an error. A FINGERPRINT
// that does not verify makes the whole datagram not STUN (RFC 8489 section
// 7.3). Attributes after MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-
// SHA256 and FINGERPRINT, and after MESSAGE-INTEGRITY-SHA256 other than
// FINGERPRINT, are left out of m.attrs: RFC 8489 sections 14.5 and 14.6 ask
// that they be ignored, since no integrity covers them.
func (m *message) parse(b []byte) error {
	m.raw, m.attrs = nil, m.buf[:0]
	m.hasFingerprint = false
	if len(b) < headerLen || b[0]&0xC0 != 0 || binary.BigEndian.Uint32(b[4:8]) != magicCookie {
		return errNotSTUN
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n%4 != 0 || len(b) != headerLen+n {
		return errMalformed
	}
	m.raw = b
	m.method, m.class = splitType(binary.BigEndian.Uint16(b[0:2]) & 0x3FFF)
	var sawMI, sawMI256 bool
	for off := headerLen; off < len(b); {
		if m.hasFingerprint {
			return errFingerprintLast
		}
		if len(b)-off < attrHeaderLen {
			return errMalformed
		}
		a := attr{
			typ:   binary.BigEndian.Uint16(b[off:]),
			start: off,
			off:   off + attrHeaderLen,
			n:     int(binary.BigEndian.Uint16(b[off+2:])),
		}
		if len(b)-a.off < padded(a.n) {
			return errMalformed
		}
		off = a.off + padded(a.n)
		switch {
		case a.typ == attrFingerprint:
			if a.n != 4 {
				return errMalformed
			}
			m.hasFingerprint = true
			if binary.BigEndian.Uint32(b[a.off:]) != fingerprint(b[:a.start]) {
				return errBadFingerprint
			}
			continue
		case sawMI256:
			continue
		case sawMI && a.typ != attrMessageIntegritySHA256:
			continue
		}
		if len(m.attrs) == maxAttrs {
			return errTooManyAttrs
		}
		m.attrs = append(m.attrs, a)
		sawMI = sawMI || a.typ == attrMessageIntegrity
		sawMI256 = sawMI256 || a.typ == attrMessageIntegritySHA256
	}
	return nil
}

func padded(n int) int { return (n + 3) &^ 3 }

// find returns the first attribute of type t (RFC 8489 section 14: only
// the first of several needs processing).
func (m *message) find(t uint16) (attr, bool) {
	for _, a := range m.attrs {
		if a.typ == t {
			return a, true
		}
	}
	return attr{}, false
}

// get returns the value of the first attribute of type t.
func (m *message) get(t uint16) ([]byte, bool) {
	a, ok := m.find(t)
	if !ok {
		return nil, false
	}
	return m.value(a), true
}

func (m *message) value(a attr) []byte { return m.raw[a.off : a.off+a.n : a.off+a.n] }

// fingerprint is the FINGERPRINT value (RFC 8489 section 14.7) of a
// message whose bytes before the attribute are b.
func fingerprint(b []byte) uint32 {
	// The length field must count FINGERPRINT itself, which b ends right
	// before: compute over a copy of the header that says so.
	var hdr [headerLen]byte
	copy(hdr[:], b[:headerLen])
	binary.BigEndian.PutUint16(hdr[2:], uint16(len(b)-headerLen+attrHeaderLen+4))
	c := crc32.Update(0, crc32.IEEETable, hdr[:])
	c = crc32.Update(c, crc32.IEEETable, b[headerLen:])
	return c ^ fingerprintXOR
}

// integrity computes the HMAC of MESSAGE-INTEGRITY (sha256 false) or
// MESSAGE-INTEGRITY-SHA256 over b, the bytes before the attribute, as if
// the message ended with an attribute of valueLen bytes (RFC 8489 sections
// 14.5 and 14.6). It appends the full HMAC to dst.
func integrity(dst, key, b []byte, sha256Alg bool, valueLen int) []byte {
	var h hash.Hash
	if sha256Alg {
		h = hmac.New(sha256.New, key)
	} else {
		h = hmac.New(sha1.New, key)
	}
	var hdr [headerLen]byte
	copy(hdr[:], b[:headerLen])
	binary.BigEndian.PutUint16(hdr[2:], uint16(len(b)-headerLen+attrHeaderLen+valueLen))
	h.Write(hdr[:])
	h.Write(b[headerLen:])
	return h.Sum(dst)
}

// checkIntegrity reports whether attribute a, a MESSAGE-INTEGRITY or
// MESSAGE-INTEGRITY-SHA256 of m, verifies under key. A MESSAGE-INTEGRITY-
// SHA256 may be truncated to 16..32 bytes in steps of 4 (RFC 8489 14.6).
func (m *message) checkIntegrity(a attr, key []byte) bool {
	sha256Alg := a.typ == attrMessageIntegritySHA256
	switch {
	case !sha256Alg && a.n != sha1Len:
		return false
	case sha256Alg && (a.n < 16 || a.n > 32 || a.n%4 != 0):
		return false
	}
	var sum [sha256.Size]byte
	mac := integrity(sum[:0], key, m.raw[:a.start], sha256Alg, a.n)
	return hmac.Equal(mac[:a.n], m.value(a))
}

// builder writes one STUN message at the end of b.
type builder struct {
	b     []byte
	start int
}

// begin starts a message of method m and class c with transaction ID txn
// at the end of w.b.
func (w *builder) begin(m method, c class, txn []byte) {
	w.start = len(w.b)
	w.b = binary.BigEndian.AppendUint16(w.b, messageType(m, c))
	w.b = append(w.b, 0, 0)
	w.b = binary.BigEndian.AppendUint32(w.b, magicCookie)
	w.b = append(w.b, txn[:txnLen]...)
}

func (w *builder) setLength() {
	binary.BigEndian.PutUint16(w.b[w.start+2:], uint16(len(w.b)-w.start-headerLen))
}

// reserve adds an attribute of type t with an n-byte value and returns the
// value to fill in; padding is zeroed.
func (w *builder) reserve(t uint16, n int) []byte {
	at := len(w.b)
	size := attrHeaderLen + padded(n)
	w.b = slices.Grow(w.b, size)[:at+size]
	binary.BigEndian.PutUint16(w.b[at:], t)
	binary.BigEndian.PutUint16(w.b[at+2:], uint16(n))
	v := w.b[at+attrHeaderLen:]
	clear(v)
	w.setLength()
	return v[:n]
}

func (w *builder) add(t uint16, v []byte) { copy(w.reserve(t, len(v)), v) }

func (w *builder) addString(t uint16, s string) { copy(w.reserve(t, len(s)), s) }

func (w *builder) addUint32(t uint16, v uint32) {
	binary.BigEndian.PutUint32(w.reserve(t, 4), v)
}

// addIntegrity adds MESSAGE-INTEGRITY (or -SHA256, full length) under key.
func (w *builder) addIntegrity(key []byte, sha256Alg bool) {
	n := sha1Len
	t := uint16(attrMessageIntegrity)
	if sha256Alg {
		n, t = sha256.Size, attrMessageIntegritySHA256
	}
	at := len(w.b)
	var sum [sha256.Size]byte
	mac := integrity(sum[:0], key, w.b[w.start:at], sha256Alg, n)
	w.add(t, mac)
}

func (w *builder) addFingerprint() {
	at := len(w.b)
	w.addUint32(attrFingerprint, 0)
	binary.BigEndian.PutUint32(w.b[at+attrHeaderLen:], fingerprint(w.b[w.start:at]))
}

func (w *builder) bytes() []byte { return w.b[w.start:] }
