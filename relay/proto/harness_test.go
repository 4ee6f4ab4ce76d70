package proto

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pion/stun/v3"
	"github.com/relaybox/relaybox/relay/auth"
)

// Test addresses are in the benchmarking ranges (198.18.0.0/15,
// 2001:2::/48), which the test config allows as peers. Nothing is sent
// anywhere: the Server has no sockets.
var (
	t0      = time.Unix(1_700_000_000, 0)
	listen4 = netip.MustParseAddrPort("198.18.0.1:3478")
	listen6 = netip.MustParseAddrPort("[2001:2::1]:3478")
	relay4  = netip.MustParseAddr("198.18.0.1")
	relay6  = netip.MustParseAddr("2001:2::1")
	client1 = netip.MustParseAddrPort("198.18.1.10:40000")
	client2 = netip.MustParseAddrPort("198.18.1.11:40000")
	client6 = netip.MustParseAddrPort("[2001:2::10]:40000")
	peer1   = netip.MustParseAddrPort("198.18.2.20:5000")
	peer2   = netip.MustParseAddrPort("198.18.2.21:5000")
	peer6   = netip.MustParseAddrPort("[2001:2::20]:5000")
)

const (
	testRealm = "relaybox.test"
	restKey   = "rest-secret"
)

var nonceKey = []byte("0123456789abcdef0123456789abcdef")

// testConfig is a dual-stack relay with static users alice and bob, a REST
// secret, the benchmarking ranges allowed, and unauthenticated limits loose
// enough not to get in the way of tests about something else.
func testConfig() Config {
	return Config{
		Auth: auth.Config{
			Realm:   testRealm,
			Users:   []string{"alice:secret", "bob:hunter2"},
			Secrets: []string{restKey},
		},
		Software:       "relaybox test",
		Listen:         []netip.AddrPort{listen4, listen6},
		RelayAddresses: []netip.Addr{relay4, relay6},
		PortMin:        50000,
		PortMax:        50999,
		AllowPeers:     []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("2001:2::/48")},
		UnauthRate:     1000,
		UnauthBurst:    1000,
		Amplification:  10,
		NonceKey:       nonceKey,
		Rand:           rand.NewChaCha8([32]byte{1}),
	}
}

// harness is a tiny I/O layer: it applies events to a model of the data
// plane and of the allocation sockets, checking that each makes sense, then
// hands out the transmits.
type harness struct {
	t       testing.TB
	s       *Server
	now     time.Time
	out     Output
	plane   map[Binding]bool
	sockets map[netip.AddrPort]bool
	events  []Event // every event so far, in order
}

func newHarness(t testing.TB, edit func(*Config)) *harness {
	t.Helper()
	cfg := testConfig()
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &harness{t: t, s: s, now: t0, plane: map[Binding]bool{}, sockets: map[netip.AddrPort]bool{}}
}

// apply applies h.out's events and returns copies of its transmits.
func (h *harness) apply() []Transmit {
	h.t.Helper()
	for _, e := range h.out.Events {
		h.events = append(h.events, e)
		rel := e.Binding.Relayed
		switch e.Kind {
		case AllocationCreated:
			if h.sockets[rel] {
				h.t.Errorf("AllocationCreated for %s, whose socket is open", rel)
			}
			h.sockets[rel] = true
		case AllocationDeleted:
			if !h.sockets[rel] {
				h.t.Errorf("AllocationDeleted for %s, whose socket is not open", rel)
			}
			delete(h.sockets, rel)
		case BindingCreated:
			if h.plane[e.Binding] {
				h.t.Errorf("BindingCreated %v: already in the data plane", e.Binding)
			}
			if !h.sockets[rel] {
				h.t.Errorf("BindingCreated %v: no socket on its relayed address", e.Binding)
			}
			h.plane[e.Binding] = true
		case BindingRefreshed:
			if !h.plane[e.Binding] {
				h.t.Errorf("BindingRefreshed %v: not in the data plane", e.Binding)
			}
		case BindingDeleted:
			if !h.plane[e.Binding] {
				h.t.Errorf("BindingDeleted %v: not in the data plane", e.Binding)
			}
			delete(h.plane, e.Binding)
		default:
			h.t.Errorf("unknown event %v", e.Kind)
		}
	}
	var ts []Transmit
	for _, tr := range h.out.Transmits {
		tr.Payload = bytes.Clone(tr.Payload)
		ts = append(ts, tr)
	}
	h.out.Reset()
	h.checkPlane()
	return ts
}

// checkPlane checks that the events add up to what the Server says the
// data plane should hold.
func (h *harness) checkPlane() {
	h.t.Helper()
	want := map[Binding]bool{}
	for b := range h.s.Bindings() {
		want[b] = true
	}
	if !maps.Equal(want, h.plane) {
		h.t.Errorf("data plane from events = %v, Server.Bindings = %v", slices.Collect(maps.Keys(h.plane)), slices.Collect(maps.Keys(want)))
	}
}

// fromClient delivers pkt from client to listen and returns what is sent.
func (h *harness) fromClient(client, listen netip.AddrPort, pkt []byte) []Transmit {
	h.t.Helper()
	h.s.HandleClient(pkt, client, listen, h.now, &h.out)
	return h.apply()
}

// fromPeer delivers pkt from peer to relayed and returns what is sent.
func (h *harness) fromPeer(peer, relayed netip.AddrPort, pkt []byte) []Transmit {
	h.t.Helper()
	h.s.HandlePeer(pkt, peer, relayed, h.now, &h.out)
	return h.apply()
}

// advance moves the clock by d, calling HandleTimeout at every deadline on
// the way, as a timer-driven I/O loop would.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	end := h.now.Add(d)
	for range 1_000_000 {
		dl := h.s.Deadline()
		if dl.IsZero() || dl.After(end) {
			break
		}
		if dl.After(h.now) {
			h.now = dl
		}
		h.s.HandleTimeout(h.now, &h.out)
		if ts := h.apply(); len(ts) > 0 {
			h.t.Errorf("HandleTimeout sent %d datagrams", len(ts))
		}
	}
	h.now = end
	h.s.HandleTimeout(h.now, &h.out)
	h.apply()
}

// --- a TURN client built on pion/stun, so requests are built and responses
// checked by code independent of the Server's ---

type client struct {
	h                  *harness
	addr, server       netip.AddrPort
	username, password string
	nonce              string
	txn                [stun.TransactionIDSize]byte
	sha256             bool // negotiate SHA-256 (PASSWORD-ALGORITHM) instead of RFC 5389 auth
}

func (h *harness) client(addr netip.AddrPort, username, password string) *client {
	return &client{h: h, addr: addr, server: listen4, username: username, password: password}
}

func (h *harness) alice() *client { return h.client(client1, "alice", "secret") }

// newTxn picks the next transaction ID: deterministic, unique per client.
func (c *client) newTxn() {
	binary.BigEndian.PutUint64(c.txn[4:], binary.BigEndian.Uint64(c.txn[4:])+1)
	copy(c.txn[:4], c.addr.Addr().AsSlice())
}

// unauth builds a request without credentials.
func (c *client) unauth(m stun.Method, setters ...stun.Setter) []byte {
	c.h.t.Helper()
	c.newTxn()
	msg, err := stun.Build(append([]stun.Setter{stun.NewType(m, stun.ClassRequest), stun.NewTransactionIDSetter(c.txn)}, setters...)...)
	if err != nil {
		c.h.t.Fatalf("stun.Build: %v", err)
	}
	return msg.Raw
}

// authed builds a request with the client's credentials and nonce (which
// it fetches with an unauthenticated Binding-free challenge first if it has
// none), with the same transaction ID as the last request if again.
func (c *client) authed(m stun.Method, setters ...stun.Setter) []byte {
	c.h.t.Helper()
	if c.nonce == "" {
		c.challenge()
	}
	c.newTxn()
	return c.build(m, setters...)
}

func (c *client) build(m stun.Method, setters ...stun.Setter) []byte {
	c.h.t.Helper()
	all := append([]stun.Setter{stun.NewType(m, stun.ClassRequest), stun.NewTransactionIDSetter(c.txn)}, setters...)
	all = append(all, stun.NewUsername(c.username), stun.NewRealm(testRealm), stun.NewNonce(c.nonce))
	msg, err := stun.Build(all...)
	if err != nil {
		c.h.t.Fatalf("stun.Build: %v", err)
	}
	if c.sha256 {
		msg.Add(stun.AttrPasswordAlgorithms, offeredAlgorithmsForTest)
		msg.Add(stun.AttrPasswordAlgorithm, []byte{0, 2, 0, 0})
		addIntegritySHA256(msg, sha256Key(c.username, testRealm, c.password))
	} else if err := stun.NewLongTermIntegrity(c.username, testRealm, c.password).AddTo(msg); err != nil {
		c.h.t.Fatalf("MESSAGE-INTEGRITY: %v", err)
	}
	if err := stun.Fingerprint.AddTo(msg); err != nil {
		c.h.t.Fatalf("FINGERPRINT: %v", err)
	}
	return msg.Raw
}

// PASSWORD-ALGORITHMS as RFC 8489 spells it, written out here rather than
// taken from the Server: SHA-256 then MD5, no parameters.
var offeredAlgorithmsForTest = []byte{0, 2, 0, 0, 0, 1, 0, 0}

func md5Key(username, realm, password string) []byte {
	k := md5.Sum([]byte(username + ":" + realm + ":" + password))
	return k[:]
}

func sha256Key(username, realm, password string) []byte {
	k := sha256.Sum256([]byte(username + ":" + realm + ":" + password))
	return k[:]
}

// addIntegritySHA256 adds MESSAGE-INTEGRITY-SHA256 the way RFC 8489
// section 14.6 says, independently of the Server's code.
func addIntegritySHA256(m *stun.Message, key []byte) {
	b := bytes.Clone(m.Raw)
	binary.BigEndian.PutUint16(b[2:], uint16(m.Length+4+32))
	mac := hmac.New(sha256.New, key)
	mac.Write(b)
	m.Add(stun.AttrMessageIntegritySHA256, mac.Sum(nil))
}

// checkIntegritySHA256 verifies a response's MESSAGE-INTEGRITY-SHA256.
func checkIntegritySHA256(m *stun.Message, key []byte) error {
	var at stun.RawAttribute
	offset := 20
	for _, a := range m.Attributes {
		if a.Type == stun.AttrMessageIntegritySHA256 {
			at = a
			break
		}
		offset += 4 + int(a.Length+3)&^3
	}
	if at.Type == 0 {
		return errors.New("no MESSAGE-INTEGRITY-SHA256")
	}
	b := bytes.Clone(m.Raw[:offset])
	binary.BigEndian.PutUint16(b[2:], uint16(offset-20+4+len(at.Value)))
	mac := hmac.New(sha256.New, key)
	mac.Write(b)
	if !hmac.Equal(mac.Sum(nil)[:len(at.Value)], at.Value) {
		return errors.New("MESSAGE-INTEGRITY-SHA256 mismatch")
	}
	return nil
}

// challenge gets a nonce the way a real client does: an unauthenticated
// Allocate answered with 401.
func (c *client) challenge() {
	c.h.t.Helper()
	res := c.h.fromClient(c.addr, c.server, c.unauth(stun.MethodAllocate, transport(protoUDP), stun.Fingerprint))
	if len(res) != 1 {
		c.h.t.Fatalf("challenge: %d responses, want 1", len(res))
	}
	m := decode(c.h.t, res[0].Payload)
	var nonce stun.Nonce
	if err := nonce.GetFrom(m); err != nil {
		c.h.t.Fatalf("challenge: no NONCE in %v", m)
	}
	c.nonce = nonce.String()
}

// do sends pkt and returns the one response, decoded and checked: same
// transaction ID, from the listen address to the client, valid
// FINGERPRINT, and valid integrity when it has any.
func (c *client) do(pkt []byte) *stun.Message {
	c.h.t.Helper()
	res := c.h.fromClient(c.addr, c.server, pkt)
	if len(res) != 1 {
		c.h.t.Fatalf("%d datagrams in answer, want 1: %v", len(res), res)
	}
	if res[0].From != c.server || res[0].To != c.addr {
		c.h.t.Errorf("answer from %s to %s, want from %s to %s", res[0].From, res[0].To, c.server, c.addr)
	}
	m := decode(c.h.t, res[0].Payload)
	if m.TransactionID != c.txn {
		c.h.t.Errorf("answer transaction ID %x, want %x", m.TransactionID, c.txn)
	}
	switch {
	case m.Contains(stun.AttrMessageIntegritySHA256):
		key := md5Key(c.username, testRealm, c.password)
		if c.sha256 {
			key = sha256Key(c.username, testRealm, c.password)
		}
		if err := checkIntegritySHA256(m, key); err != nil {
			c.h.t.Errorf("answer %v: %v", m, err)
		}
	case m.Contains(stun.AttrMessageIntegrity):
		if err := stun.NewLongTermIntegrity(c.username, testRealm, c.password).Check(m); err != nil {
			c.h.t.Errorf("answer %v: MESSAGE-INTEGRITY: %v", m, err)
		}
	}
	return m
}

// call is authed then do, answering a 438 by retrying with the new nonce
// as clients must.
func (c *client) call(m stun.Method, setters ...stun.Setter) *stun.Message {
	c.h.t.Helper()
	res := c.do(c.authed(m, setters...))
	if code(res) == 438 {
		var nonce stun.Nonce
		_ = nonce.GetFrom(res)
		c.nonce = nonce.String()
		res = c.do(c.authed(m, setters...))
	}
	return res
}

func (c *client) allocate(setters ...stun.Setter) *stun.Message {
	c.h.t.Helper()
	return c.call(stun.MethodAllocate, append([]stun.Setter{transport(protoUDP)}, setters...)...)
}

// mustAllocate allocates and returns the relayed addresses.
func (c *client) mustAllocate(setters ...stun.Setter) []netip.AddrPort {
	c.h.t.Helper()
	res := c.allocate(setters...)
	if res.Type.Class != stun.ClassSuccessResponse {
		c.h.t.Fatalf("Allocate: %v (code %d)", res, code(res))
	}
	return xorAddrs(res, stun.AttrXORRelayedAddress)
}

func (c *client) mustSucceed(m stun.Method, setters ...stun.Setter) *stun.Message {
	c.h.t.Helper()
	res := c.call(m, setters...)
	if res.Type.Class != stun.ClassSuccessResponse {
		c.h.t.Fatalf("%v: %v (code %d)", m, res, code(res))
	}
	return res
}

func (c *client) permit(peers ...netip.AddrPort) {
	c.h.t.Helper()
	var ss []stun.Setter
	for _, p := range peers {
		ss = append(ss, peerAddr(p))
	}
	c.mustSucceed(stun.MethodCreatePermission, ss...)
}

func (c *client) bind(number uint16, peer netip.AddrPort) {
	c.h.t.Helper()
	c.mustSucceed(stun.MethodChannelBind, channelNumber(number), peerAddr(peer))
}

// send sends a Send indication and returns what the relay transmits.
func (c *client) send(peer netip.AddrPort, data []byte, extra ...stun.Setter) []Transmit {
	c.h.t.Helper()
	c.newTxn()
	msg, err := stun.Build(append([]stun.Setter{stun.NewType(stun.MethodSend, stun.ClassIndication), stun.NewTransactionIDSetter(c.txn), peerAddr(peer), rawAttr(stun.AttrData, data)}, extra...)...)
	if err != nil {
		c.h.t.Fatalf("stun.Build: %v", err)
	}
	return c.h.fromClient(c.addr, c.server, msg.Raw)
}

func (c *client) channelData(number uint16, data []byte) []Transmit {
	c.h.t.Helper()
	pkt := binary.BigEndian.AppendUint16(nil, number)
	pkt = binary.BigEndian.AppendUint16(pkt, uint16(len(data)))
	return c.h.fromClient(c.addr, c.server, append(pkt, data...))
}

// decode decodes a STUN message with pion/stun and checks FINGERPRINT.
func decode(t testing.TB, b []byte) *stun.Message {
	t.Helper()
	m := new(stun.Message)
	if err := stun.Decode(bytes.Clone(b), m); err != nil {
		t.Fatalf("stun.Decode(%x): %v", b, err)
	}
	if m.Contains(stun.AttrFingerprint) {
		if err := stun.Fingerprint.Check(m); err != nil {
			t.Errorf("FINGERPRINT of %v: %v", m, err)
		}
	}
	return m
}

// code is a response's ERROR-CODE, 200 for a success, 0 for anything else.
func code(m *stun.Message) int {
	switch m.Type.Class {
	case stun.ClassSuccessResponse:
		return 200
	case stun.ClassErrorResponse:
		var e stun.ErrorCodeAttribute
		if err := e.GetFrom(m); err != nil {
			return -1
		}
		return int(e.Code)
	}
	return 0
}

// xorAddrs decodes every attribute of type t with pion/stun.
func xorAddrs(m *stun.Message, t stun.AttrType) []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range m.Attributes {
		if a.Type != t {
			continue
		}
		one := &stun.Message{TransactionID: m.TransactionID}
		one.WriteHeader()
		one.Add(t, a.Value)
		var x stun.XORMappedAddress
		if err := x.GetFromAs(one, t); err != nil {
			continue
		}
		ip, _ := netip.AddrFromSlice(x.IP)
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(x.Port)))
	}
	return out
}

func lifetimeOf(m *stun.Message) uint32 {
	v, err := m.Get(stun.AttrLifetime)
	if err != nil || len(v) != 4 {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

// --- attribute setters for what pion/stun does not have ---

func rawAttr(t stun.AttrType, v []byte) stun.Setter { return stun.RawAttribute{Type: t, Value: v} }

func transport(proto byte) stun.Setter {
	return rawAttr(stun.AttrRequestedTransport, []byte{proto, 0, 0, 0})
}

func lifetime(secs uint32) stun.Setter {
	return rawAttr(stun.AttrLifetime, binary.BigEndian.AppendUint32(nil, secs))
}

func channelNumber(n uint16) stun.Setter {
	return rawAttr(stun.AttrChannelNumber, []byte{byte(n >> 8), byte(n), 0, 0})
}

func requestedFamily(f byte) stun.Setter {
	return rawAttr(stun.AttrRequestedAddressFamily, []byte{f, 0, 0, 0})
}

func additionalFamily(f byte) stun.Setter {
	return rawAttr(attrAdditionalAddressFamily, []byte{f, 0, 0, 0})
}

func evenPort(reserve bool) stun.Setter {
	if reserve {
		return rawAttr(stun.AttrEvenPort, []byte{0x80})
	}
	return rawAttr(stun.AttrEvenPort, []byte{0})
}

var dontFragment = rawAttr(stun.AttrDontFragment, nil)

type peerAddr netip.AddrPort

func (p peerAddr) AddTo(m *stun.Message) error {
	a := netip.AddrPort(p)
	return stun.XORMappedAddress{IP: net.IP(a.Addr().AsSlice()), Port: int(a.Port())}.AddToAs(m, stun.AttrXORPeerAddress)
}

// peerAddr16 sends an IPv4 address in its IPv4-mapped IPv6 form, as a
// hostile client would to slip past a naive check.
type peerAddr16 netip.AddrPort

func (p peerAddr16) AddTo(m *stun.Message) error {
	a := netip.AddrPort(p)
	ip := a.Addr().As16()
	v := make([]byte, 20)
	v[1] = familyIPv6
	binary.BigEndian.PutUint16(v[2:], a.Port()^0x2112)
	binary.BigEndian.PutUint32(v[4:], magicCookie)
	copy(v[8:], m.TransactionID[:])
	for i := range ip {
		v[4+i] ^= ip[i]
	}
	m.Add(stun.AttrXORPeerAddress, v)
	return nil
}

func (c *client) String() string { return fmt.Sprintf("client %s (%s)", c.addr, c.username) }

// netipCmp lets go-cmp compare netip values, which hide their fields.
var netipCmp = cmp.Options{
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
}

func diff(want, got any) string { return cmp.Diff(want, got, netipCmp) }

func equal(a, b any) bool { return cmp.Equal(a, b, netipCmp) }

func restPassword(username string) string { return auth.RESTPassword(restKey, username) }
