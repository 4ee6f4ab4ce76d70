package proto

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// msg builds a raw STUN message of type 0x0001 with the given attributes
// (type, value pairs) and a correct length, for parser tests.
func msg(attrs ...any) []byte {
	b := []byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	for i := 0; i < len(attrs); i += 2 {
		v := attrs[i+1].([]byte)
		b = binary.BigEndian.AppendUint16(b, uint16(attrs[i].(int)))
		b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
		b = append(b, v...)
		b = append(b, make([]byte, padded(len(v))-len(v))...)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)-headerLen))
	return b
}

func withFingerprint(b []byte) []byte {
	w := builder{b: bytes.Clone(b)}
	w.addFingerprint()
	return w.b
}

func TestParse(t *testing.T) {
	tooMany := make([]any, 0, 2*(maxAttrs+1))
	for range maxAttrs + 1 {
		tooMany = append(tooMany, 0x8050, []byte{1})
	}
	for _, tc := range []struct {
		name  string
		b     []byte
		err   error
		attrs []uint16 // the attributes to process
	}{
		{"no attributes", msg(), nil, nil},
		{"short", msg()[:19], errNotSTUN, nil},
		{"ChannelData", []byte{0x40, 0, 0, 16, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, errNotSTUN, nil},
		{"no magic cookie", append([]byte{0, 1, 0, 0, 0, 0, 0, 0}, make([]byte, 12)...), errNotSTUN, nil},
		{"length not a multiple of 4", func() []byte { b := append(msg(), 0, 0); b[3] = 2; return b }(), errMalformed, nil},
		{"length longer than the datagram", func() []byte { b := msg(); b[3] = 8; return b }(), errMalformed, nil},
		{"trailing bytes", append(msg(), 0, 0, 0, 0), errMalformed, nil},
		{"attribute past the end", func() []byte { b := msg(0x8050, []byte{1, 2, 3, 4}); b[23] = 9; return b }(), errMalformed, nil},
		{"too many attributes", msg(tooMany...), errTooManyAttrs, nil},
		{"attributes after MESSAGE-INTEGRITY are ignored",
			msg(attrUsername, []byte("u"), attrMessageIntegrity, make([]byte, 20), attrRealm, []byte("r"),
				attrMessageIntegritySHA256, make([]byte, 32), attrNonce, []byte("n")),
			nil, []uint16{attrUsername, attrMessageIntegrity, attrMessageIntegritySHA256}},
		{"FINGERPRINT", withFingerprint(msg(attrUsername, []byte("u"))), nil, []uint16{attrUsername}},
		{"FINGERPRINT wrong", func() []byte { b := withFingerprint(msg()); b[len(b)-1] ^= 1; return b }(), errBadFingerprint, nil},
		{"FINGERPRINT of 8 bytes", msg(attrFingerprint, make([]byte, 8)), errMalformed, nil},
		{"attribute after FINGERPRINT", func() []byte {
			b := append(withFingerprint(msg()), msg(attrUsername, []byte("abcd"))[headerLen:]...)
			binary.BigEndian.PutUint16(b[2:], uint16(len(b)-headerLen))
			return b
		}(), errFingerprintLast, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m message
			err := m.parse(tc.b)
			if err != tc.err {
				t.Fatalf("parse = %v, want %v", err, tc.err)
			}
			var got []uint16
			for _, a := range m.attrs {
				got = append(got, a.typ)
			}
			if err == nil && !equal(tc.attrs, got) {
				t.Errorf("attributes = %#x, want %#x", got, tc.attrs)
			}
		})
	}
}

// TestIntegritySHA256Lengths: MESSAGE-INTEGRITY-SHA256 may be truncated to
// 16, 20, ... 32 bytes (RFC 8489 section 14.6), nothing else.
func TestIntegritySHA256Lengths(t *testing.T) {
	key := []byte("key")
	for n := 0; n <= 36; n++ {
		w := builder{}
		w.begin(methodAllocate, classRequest, []byte("0123456789ab"))
		w.addString(attrUsername, "u")
		var sum [32]byte
		mac := integrity(sum[:0], key, w.bytes(), true, n)
		v := make([]byte, n)
		copy(v, mac)
		w.add(attrMessageIntegritySHA256, v)
		var m message
		if err := m.parse(w.bytes()); err != nil {
			t.Fatal(err)
		}
		a, _ := m.find(attrMessageIntegritySHA256)
		want := n >= 16 && n <= 32 && n%4 == 0
		if got := m.checkIntegrity(a, key); got != want {
			t.Errorf("MESSAGE-INTEGRITY-SHA256 of %d bytes verifies = %v, want %v", n, got, want)
		}
	}
	// MESSAGE-INTEGRITY is 20 bytes, exactly.
	var m message
	if err := m.parse(msg(attrMessageIntegrity, make([]byte, 16))); err != nil {
		t.Fatal(err)
	}
	if a, _ := m.find(attrMessageIntegrity); m.checkIntegrity(a, key) {
		t.Errorf("a 16-byte MESSAGE-INTEGRITY verifies")
	}
}
