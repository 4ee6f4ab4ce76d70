package proto

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"

	"github.com/relaybox/relaybox/relay/auth"
)

// The test vectors of RFC 5769, section 2, as hex.
func vector(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

var (
	// 2.1: request with short-term credentials (password below),
	// SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY,
	// FINGERPRINT. Padding is spaces (0x20), as the RFC notes.
	rfc5769Request = vector(`
		00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
		80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
		00 24 00 04 6e 00 01 ff
		80 29 00 08 93 2f f9 b1 51 26 3b 36
		00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
		00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
		80 28 00 04 e5 7a 3b cf`)
	// 2.2: IPv4 response, XOR-MAPPED-ADDRESS 192.0.2.1:32853.
	rfc5769ResponseIPv4 = vector(`
		01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
		80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
		00 20 00 08 00 01 a1 47 e1 12 a6 43
		00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
		80 28 00 04 c0 7d 4c 96`)
	// 2.3: IPv6 response, XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853.
	rfc5769ResponseIPv6 = vector(`
		01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
		80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
		00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
		00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
		80 28 00 04 c8 fb 0b 4c`)
	// 2.4: request with long-term credentials: USERNAME "マトリックス",
	// NONCE, REALM "example.org", MESSAGE-INTEGRITY; password "TheMatrIX"
	// after SASLprep.
	rfc5769LongTerm = vector(`
		00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
		00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
		00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
		00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
		00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66`)

	rfc5769ShortTermKey = []byte("VOkJxbRl1RmTxUk/WvJxBt")
	rfc5769LongTermKey  = auth.Key(auth.MD5, "\u30DE\u30C8\u30EA\u30C3\u30AF\u30B9", "example.org", []byte("TheMatrIX"))
)

// TestRFC5769Parse: the parser accepts each vector, verifies its
// FINGERPRINT while parsing, and its MESSAGE-INTEGRITY under the RFC's key,
// and refuses both once a bit is flipped.
func TestRFC5769Parse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		msg    []byte
		key    []byte
		method method
		class  class
		mapped string
	}{
		{"2.1 request", rfc5769Request, rfc5769ShortTermKey, methodBinding, classRequest, ""},
		{"2.2 IPv4 response", rfc5769ResponseIPv4, rfc5769ShortTermKey, methodBinding, classSuccess, "192.0.2.1:32853"},
		{"2.3 IPv6 response", rfc5769ResponseIPv6, rfc5769ShortTermKey, methodBinding, classSuccess, "[2001:db8:1234:5678:11:2233:4455:6677]:32853"},
		{"2.4 long-term request", rfc5769LongTerm, rfc5769LongTermKey, methodBinding, classRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m message
			if err := m.parse(tc.msg); err != nil {
				t.Fatalf("parse = %v", err)
			}
			if m.method != tc.method || m.class != tc.class {
				t.Errorf("type = %v/%v, want %v/%v", m.method, m.class, tc.method, tc.class)
			}
			mi, ok := m.find(attrMessageIntegrity)
			if !ok || !m.checkIntegrity(mi, tc.key) {
				t.Errorf("MESSAGE-INTEGRITY does not verify under the RFC's key")
			}
			if m.checkIntegrity(mi, []byte("wrong")) {
				t.Errorf("MESSAGE-INTEGRITY verifies under a wrong key")
			}
			if tc.mapped != "" {
				v, _ := m.get(attrXORMappedAddress)
				got, err := parseXORAddress(v, m.txn())
				if err != nil || got != netip.MustParseAddrPort(tc.mapped) {
					t.Errorf("XOR-MAPPED-ADDRESS = %v, %v; want %s", got, err, tc.mapped)
				}
			}
			// Flip one bit of the body: FINGERPRINT (when present) makes
			// the datagram not STUN, else MESSAGE-INTEGRITY fails.
			bad := bytes.Clone(tc.msg)
			bad[25] ^= 1
			err := m.parse(bad)
			if m.hasFingerprint || err != nil {
				if err != errBadFingerprint {
					t.Errorf("parse(flipped) = %v, want %v", err, errBadFingerprint)
				}
				return
			}
			mi, _ = m.find(attrMessageIntegrity)
			if m.checkIntegrity(mi, tc.key) {
				t.Errorf("MESSAGE-INTEGRITY verifies on a flipped bit")
			}
		})
	}
}

// TestRFC5769Build: the builder reproduces each vector byte for byte. The
// vectors pad with spaces where the builder pads with zeros; the test
// writes the spaces in before the integrity is computed, as the RFC's
// author did.
func TestRFC5769Build(t *testing.T) {
	spaces := func(w *builder, n int) {
		for i := range n {
			w.b[len(w.b)-1-i] = ' '
		}
	}
	t.Run("2.1 request", func(t *testing.T) {
		w := builder{}
		w.begin(methodBinding, classRequest, rfc5769Request[8:20])
		w.addString(attrSoftware, "STUN test client")
		w.addUint32(0x0024, 0x6e0001ff) // PRIORITY
		w.add(0x8029, vector("93 2f f9 b1 51 26 3b 36"))
		w.addString(attrUsername, "evtj:h6vY")
		spaces(&w, 3)
		w.addIntegrity(rfc5769ShortTermKey, false)
		w.addFingerprint()
		if !bytes.Equal(w.bytes(), rfc5769Request) {
			t.Errorf("built\n%x\nwant\n%x", w.bytes(), rfc5769Request)
		}
	})
	for _, tc := range []struct {
		name string
		want []byte
		addr string
	}{
		{"2.2 IPv4 response", rfc5769ResponseIPv4, "192.0.2.1:32853"},
		{"2.3 IPv6 response", rfc5769ResponseIPv6, "[2001:db8:1234:5678:11:2233:4455:6677]:32853"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := builder{}
			w.begin(methodBinding, classSuccess, tc.want[8:20])
			w.addString(attrSoftware, "test vector")
			spaces(&w, 1)
			w.addXORAddress(attrXORMappedAddress, netip.MustParseAddrPort(tc.addr))
			w.addIntegrity(rfc5769ShortTermKey, false)
			w.addFingerprint()
			if !bytes.Equal(w.bytes(), tc.want) {
				t.Errorf("built\n%x\nwant\n%x", w.bytes(), tc.want)
			}
		})
	}
	t.Run("2.4 long-term request", func(t *testing.T) {
		w := builder{}
		w.begin(methodBinding, classRequest, rfc5769LongTerm[8:20])
		w.addString(attrUsername, "\u30DE\u30C8\u30EA\u30C3\u30AF\u30B9")
		w.addString(attrNonce, "f//499k954d6OL34oL9FSTvy64sA")
		w.addString(attrRealm, "example.org")
		w.addIntegrity(rfc5769LongTermKey, false)
		if !bytes.Equal(w.bytes(), rfc5769LongTerm) {
			t.Errorf("built\n%x\nwant\n%x", w.bytes(), rfc5769LongTerm)
		}
	})
}

// TestMessageType checks the interleaving of method and class bits against
// the types RFC 8489 and RFC 8656 list.
func TestMessageType(t *testing.T) {
	for _, tc := range []struct {
		m    method
		c    class
		want uint16
	}{
		{methodBinding, classRequest, 0x0001},
		{methodBinding, classSuccess, 0x0101},
		{methodBinding, classError, 0x0111},
		{methodAllocate, classRequest, 0x0003},
		{methodAllocate, classError, 0x0113},
		{methodSend, classIndication, 0x0016},
		{methodData, classIndication, 0x0017},
		{methodChannelBind, classSuccess, 0x0109},
		{method(0xFFF), classError, 0x3FFF},
	} {
		if got := messageType(tc.m, tc.c); got != tc.want {
			t.Errorf("messageType(%#x, %d) = %#04x, want %#04x", tc.m, tc.c, got, tc.want)
		}
		if m, c := splitType(tc.want); m != tc.m || c != tc.c {
			t.Errorf("splitType(%#04x) = %#x, %d; want %#x, %d", tc.want, m, c, tc.m, tc.c)
		}
	}
}
