package proto

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/pion/stun/v3"
)

// Fuzz targets. Their seeds run with every `go test`; `go test -fuzz=NAME`
// explores further.

// seedRequests are datagrams a client sends: a pion-built request of every
// method, ChannelData, the RFC 5769 vectors, and garbage.
func seedRequests(h *harness) [][]byte {
	c := h.alice()
	c.nonce = "seed"
	seeds := [][]byte{
		c.unauth(stun.MethodAllocate, transport(protoUDP), stun.Fingerprint),
		c.unauth(stun.MethodBinding),
		c.unauth(stun.MethodBinding, rawAttr(stun.AttrChangeRequest, []byte{0, 0, 0, 0})),
		c.build(stun.MethodAllocate, transport(protoUDP), evenPort(true), additionalFamily(familyIPv6)),
		c.build(stun.MethodRefresh, lifetime(0), requestedFamily(familyIPv6)),
		c.build(stun.MethodCreatePermission, peerAddr(peer1), peerAddr(peer6)),
		c.build(stun.MethodChannelBind, channelNumber(0x4000), peerAddr(peer1)),
		{0x40, 0x00, 0x00, 0x03, 'a', 'b', 'c', 0},
		{0x7f, 0xff, 0x00, 0x00},
		{0x40, 0x00, 0xff, 0xff},
		rfc5769Request, rfc5769ResponseIPv4, rfc5769ResponseIPv6, rfc5769LongTerm,
		{}, {0}, {0xff, 0xff, 0xff, 0xff},
	}
	m, _ := stun.Build(stun.NewType(stun.MethodSend, stun.ClassIndication), stun.TransactionID, peerAddr(peer1), rawAttr(stun.AttrData, []byte("data")), dontFragment)
	return append(seeds, m.Raw)
}

// FuzzHandleClient feeds arbitrary datagrams to a Server holding an
// allocation, a permission and a channel, from the allocation's client and
// from a stranger. Whatever comes in: no panic, every answer to a client is
// a STUN message pion decodes with the request's transaction ID, nothing is
// sent to a peer without a permission, and the data plane events add up.
func FuzzHandleClient(f *testing.F) {
	h := newHarness(f, nil)
	for _, s := range seedRequests(h) {
		f.Add(s)
	}
	c := h.alice()
	c.mustAllocate(additionalFamily(familyIPv6))
	c.bind(0x4000, peer1)
	c.bind(0x4001, peer6)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		h.t = t
		for _, from := range []netip.AddrPort{client1, client2} {
			for _, tr := range h.fromClient(from, listen4, bytes.Clone(pkt)) {
				switch {
				case tr.To.Addr() == peer1.Addr() || tr.To.Addr() == peer6.Addr():
					// Permissions are per IP address: any port of a
					// permitted peer may be sent to (RFC 8656 section 9).
					if tr.From.Port() < 50000 {
						t.Errorf("datagram to a peer from %s", tr.From)
					}
				case tr.To == from:
					m := decode(t, tr.Payload)
					if m.Type.Class != stun.ClassSuccessResponse && m.Type.Class != stun.ClassErrorResponse {
						t.Errorf("answer of class %v", m.Type.Class)
					}
					if !bytes.Equal(m.TransactionID[:], pkt[8:20]) {
						t.Errorf("answer transaction ID %x, request's %x", m.TransactionID, pkt[8:20])
					}
				default:
					t.Errorf("datagram to %s, neither a permitted peer nor the sender", tr.To)
				}
			}
		}
	})
}

// FuzzHandlePeer: any payload from a permitted peer reaches the client
// intact, as ChannelData on a bound channel or as a Data indication pion
// decodes.
func FuzzHandlePeer(f *testing.F) {
	h := newHarness(f, nil)
	c := h.alice()
	relayed := c.mustAllocate()[0]
	c.bind(0x4000, peer1)
	c.permit(peer2)
	for _, s := range [][]byte{nil, []byte("hello"), make([]byte, 1500), {0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42}} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, payload []byte, bound bool) {
		h.t = t
		from := peer2
		if bound {
			from = peer1
		}
		out := h.fromPeer(from, relayed, payload)
		if len(out) != 1 {
			t.Fatalf("%d datagrams, want 1", len(out))
		}
		if bound {
			number, data, ok := parseChannelData(out[0].Payload)
			if !ok || number != 0x4000 || !bytes.Equal(data, payload) || len(out[0].Payload) != 4+len(payload) {
				t.Errorf("ChannelData %x does not carry %x on 0x4000 unpadded", out[0].Payload, payload)
			}
			return
		}
		m := decode(t, out[0].Payload)
		if d, err := m.Get(stun.AttrData); err != nil || !bytes.Equal(d, payload) {
			t.Errorf("Data indication DATA = %x, %v; want %x", d, err, payload)
		}
	})
}

// FuzzParseMessage: the parser never reads past the datagram, and what it
// accepts pion/stun decodes too.
func FuzzParseMessage(f *testing.F) {
	for _, s := range seedRequests(newHarness(f, nil)) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m message
		if err := m.parse(b); err != nil {
			return
		}
		for _, a := range m.attrs {
			if a.off+a.n > len(b) || a.start+attrHeaderLen != a.off {
				t.Fatalf("attribute %+v outside a %d-byte datagram", a, len(b))
			}
		}
		if err := stun.Decode(bytes.Clone(b), new(stun.Message)); err != nil {
			t.Errorf("parse accepted %x, pion/stun says %v", b, err)
		}
	})
}

// FuzzXORAddress: what parses re-encodes to the same address.
func FuzzXORAddress(f *testing.F) {
	txn := []byte("0123456789ab")
	for _, a := range []string{"192.0.2.1:32853", "[2001:db8::1]:1", "0.0.0.0:0", "[::ffff:1.2.3.4]:5"} {
		w := builder{}
		w.begin(methodBinding, classSuccess, txn)
		w.addXORAddress(attrXORPeerAddress, netip.MustParseAddrPort(a))
		f.Add(w.bytes()[headerLen+attrHeaderLen:])
	}
	f.Add([]byte{0, 3, 0, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		a, err := parseXORAddress(v, txn)
		if err != nil {
			return
		}
		w := builder{}
		w.begin(methodBinding, classSuccess, txn)
		w.addXORAddress(attrXORPeerAddress, a)
		b, err := parseXORAddress(w.bytes()[headerLen+attrHeaderLen:], txn)
		if err != nil || b != unmapAddrPort(a) {
			t.Errorf("round trip of %s = %s, %v", a, b, err)
		}
	})
}

// FuzzChannelData: a parsed ChannelData's data is what its length says,
// and its number is in range.
func FuzzChannelData(f *testing.F) {
	for _, s := range [][]byte{{0x40, 0, 0, 3, 'a', 'b', 'c', 0}, {0x7f, 0xff, 0, 0}, {0x80, 0, 0, 0}, {0x40, 0, 0, 9}, {0x40}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		number, data, ok := parseChannelData(b)
		if !ok {
			return
		}
		if number < MinChannel || number > MaxChannel || len(data) != int(binary.BigEndian.Uint16(b[2:])) {
			t.Errorf("parseChannelData(%x) = %#x, %x", b, number, data)
		}
		if len(data) > 0 && &data[0] != &b[4] {
			t.Errorf("parseChannelData copied the data; it must point into the datagram")
		}
		hdr := make([]byte, 4)
		putChannelData(hdr, number, len(data))
		if !bytes.Equal(hdr, b[:4]) {
			t.Errorf("header %x re-encodes as %x", b[:4], hdr)
		}
	})
}

// fixedLength fuzzes a parser of a fixed-length attribute: it succeeds
// exactly on values of that length.
func fixedLength[T any](f *testing.F, n int, parse func([]byte) (T, error)) {
	f.Add(make([]byte, n))
	f.Add(bytes.Repeat([]byte{0xff}, n))
	f.Add(make([]byte, n+1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		_, err := parse(v)
		if (err == nil) != (len(v) == n) {
			t.Errorf("parse(%x) = %v; want success exactly for %d bytes", v, err, n)
		}
	})
}

func FuzzRequestedTransport(f *testing.F) { fixedLength(f, 4, parseRequestedTransport) }
func FuzzLifetime(f *testing.F)           { fixedLength(f, 4, parseUint32) }
func FuzzChannelNumber(f *testing.F)      { fixedLength(f, 4, parseChannelNumber) }
func FuzzAddressFamily(f *testing.F)      { fixedLength(f, 4, parseFamily) }
func FuzzEvenPort(f *testing.F)           { fixedLength(f, 1, parseEvenPort) }
func FuzzReservationToken(f *testing.F)   { fixedLength(f, 8, parseReservationToken) }

func FuzzPasswordAlgorithm(f *testing.F) {
	for _, s := range [][]byte{{0, 1, 0, 0}, {0, 2, 0, 0}, {0, 2, 0, 4, 1, 2, 3, 4}, {0, 2, 0, 9}, {0}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		alg, err := parsePasswordAlgorithm(v)
		if err == nil && (len(v) < 4 || len(v) != 4+int(binary.BigEndian.Uint16(v[2:])) || uint16(alg) != binary.BigEndian.Uint16(v)) {
			t.Errorf("parsePasswordAlgorithm(%x) = %v, nil", v, alg)
		}
	})
}

func FuzzPasswordAlgorithms(f *testing.F) {
	for _, s := range [][]byte{offeredAlgorithms, {0, 1, 0, 1, 9, 0, 0, 0}, {0, 1, 0, 8}, {0, 1}, nil} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		in, err := passwordAlgorithmsContain(v, 2)
		if err == nil && len(v)%4 != 0 {
			t.Errorf("passwordAlgorithmsContain(%x) accepted a length not a multiple of 4", v)
		}
		if in && err != nil {
			t.Errorf("passwordAlgorithmsContain(%x) = true with error %v", v, err)
		}
	})
}

// The auth package's parsers (REST usernames, nonces) have their fuzz
// targets there; the policy's in package policy.
