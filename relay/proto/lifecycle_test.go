package proto

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// TestChannelBindInstallsBeforeSuccess is the data-plane hook's contract:
// an I/O layer that applies Events before Transmits has the binding in its
// data plane when the ChannelBind success response leaves, so the client's
// first ChannelData can take the kernel path.
func TestChannelBindInstallsBeforeSuccess(t *testing.T) {
	h := newHarness(t, nil)
	c := h.alice()
	relayed := c.mustAllocate()[0]
	c.newTxn()
	pkt := c.build(stun.MethodChannelBind, channelNumber(0x4000), peerAddr(peer1))

	h.s.HandleClient(pkt, c.addr, c.server, h.now, &h.out)
	want := Binding{Client: client1, Server: listen4, Channel: 0x4000, Relayed: relayed, Peer: peer1}
	if diff := diff([]Event{{Kind: BindingCreated, Binding: want, Username: "alice"}}, h.out.Events); diff != "" {
		t.Fatalf("events of ChannelBind (-want +got):\n%s", diff)
	}
	// The I/O layer's order: events, then transmits.
	plane := map[Binding]bool{}
	for _, e := range h.out.Events {
		plane[e.Binding] = true
	}
	if len(h.out.Transmits) != 1 {
		t.Fatalf("transmits = %d, want the success response", len(h.out.Transmits))
	}
	if res := decode(t, h.out.Transmits[0].Payload); res.Type != stun.NewType(stun.MethodChannelBind, stun.ClassSuccessResponse) || !plane[want] {
		t.Errorf("success %v sent with the data plane holding %v, want it holding %v", res.Type, plane, want)
	}
	h.apply()

	// A refresh rewrites the binding, again before its success.
	c.newTxn()
	h.s.HandleClient(c.build(stun.MethodChannelBind, channelNumber(0x4000), peerAddr(peer1)), c.addr, c.server, h.now, &h.out)
	if diff := diff([]Event{{Kind: BindingRefreshed, Binding: want, Username: "alice"}}, h.out.Events); diff != "" {
		t.Errorf("events of a refreshing ChannelBind (-want +got):\n%s", diff)
	}
	h.apply()
}

// TestLifetimes runs allocations, permissions and channels through hours of
// simulated time and checks each ends when RFC 8656 says.
func TestLifetimes(t *testing.T) {
	type step struct {
		at   time.Duration // since the allocation
		do   func(h *harness, c *client)
		want state
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"allocation expires after the default 600 s", []step{
			{599 * time.Second, nil, state{Allocations: 1}},
			{600 * time.Second, nil, state{}},
		}},
		{"Refresh extends, LIFETIME capped at 3600 s", []step{
			{500 * time.Second, func(h *harness, c *client) { c.mustSucceed(stun.MethodRefresh, lifetime(100000)) }, state{Allocations: 1}},
			{500*time.Second + 3599*time.Second, nil, state{Allocations: 1}},
			{500*time.Second + 3600*time.Second, nil, state{}},
		}},
		{"Refresh below the default gets the default", []step{
			{100 * time.Second, func(h *harness, c *client) {
				if got := lifetimeOf(c.mustSucceed(stun.MethodRefresh, lifetime(10))); got != 600 {
					t.Errorf("Refresh LIFETIME 10 answered %d, want 600", got)
				}
			}, state{Allocations: 1}},
			{699 * time.Second, nil, state{Allocations: 1}},
			{700 * time.Second, nil, state{}},
		}},
		{"Refresh with LIFETIME 0 deletes at once", []step{
			{time.Second, func(h *harness, c *client) {
				if got := lifetimeOf(c.mustSucceed(stun.MethodRefresh, lifetime(0))); got != 0 {
					t.Errorf("Refresh LIFETIME 0 answered %d, want 0", got)
				}
			}, state{}},
		}},
		{"permission lasts 300 s and takes its bindings along", []step{
			{0, func(h *harness, c *client) { c.bind(0x4000, peer1) }, state{Allocations: 1, Permissions: 1, Channels: 1, Bindings: 1}},
			{299 * time.Second, nil, state{Allocations: 1, Permissions: 1, Channels: 1, Bindings: 1}},
			{300 * time.Second, nil, state{Allocations: 1, Channels: 1}},
			// A new permission brings the still-bound channel back.
			{310 * time.Second, func(h *harness, c *client) { c.permit(peer1) }, state{Allocations: 1, Permissions: 1, Channels: 1, Bindings: 1}},
			{599 * time.Second, nil, state{Allocations: 1, Permissions: 1, Channels: 1, Bindings: 1}},
		}},
		{"channel lasts 600 s, then 300 s of cooldown", []step{
			{0, func(h *harness, c *client) { c.bind(0x4000, peer1) }, state{Allocations: 1, Permissions: 1, Channels: 1, Bindings: 1}},
			{290 * time.Second, func(h *harness, c *client) { c.permit(peer1) }, state{Allocations: 1, Permissions: 1, Channels: 1, Bindings: 1}},
			{500 * time.Second, func(h *harness, c *client) { c.mustSucceed(stun.MethodRefresh) }, state{Allocations: 1, Permissions: 1, Channels: 1, Bindings: 1}},
			{590 * time.Second, func(h *harness, c *client) { c.permit(peer1) }, state{Allocations: 1, Permissions: 1, Channels: 1, Bindings: 1}},
			{600 * time.Second, nil, state{Allocations: 1, Permissions: 1, Channels: 1}},
			{899 * time.Second, nil, state{Allocations: 1, Channels: 1}},
			{900 * time.Second, nil, state{Allocations: 1}},
		}},
		{"a deleted allocation takes everything along", []step{
			{0, func(h *harness, c *client) {
				c.bind(0x4000, peer1)
				c.bind(0x4001, peer2)
			}, state{Allocations: 1, Permissions: 2, Channels: 2, Bindings: 2}},
			{60 * time.Second, func(h *harness, c *client) { c.mustSucceed(stun.MethodRefresh, lifetime(0)) }, state{}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			c := h.alice()
			c.mustAllocate()
			start := h.now
			for _, s := range tc.steps {
				h.advance(start.Add(s.at).Sub(h.now))
				if s.do != nil {
					s.do(h, c)
				}
				if diff := diff(s.want, h.state()); diff != "" {
					t.Errorf("at %v (-want +got):\n%s", s.at, diff)
				}
			}
			// However it ended, hours later nothing is left.
			h.advance(5 * time.Hour)
			if diff := diff(state{}, h.state()); diff != "" {
				t.Errorf("hours later (-want +got):\n%s", diff)
			}
			if len(h.sockets) != 0 || len(h.plane) != 0 {
				t.Errorf("hours later: sockets %v, data plane %v; want both empty", h.sockets, h.plane)
			}
		})
	}
}

// state is what a test checks of the Server and the data plane.
type state struct {
	Allocations, Permissions, Channels, Bindings int
}

func (h *harness) state() state {
	st := h.s.Stats()
	if st.Bindings != len(h.plane) {
		h.t.Errorf("Stats.Bindings = %d, data plane holds %d", st.Bindings, len(h.plane))
	}
	return state{st.Allocations, st.Permissions, st.Channels, st.Bindings}
}

// TestChannelRebinding covers RFC 8656 section 12: a number and a peer are
// each other's while bound and for 300 s after.
func TestChannelRebinding(t *testing.T) {
	other := netip.AddrPortFrom(peer1.Addr(), 6000)
	for _, tc := range []struct {
		name   string
		after  time.Duration // after the first binding of 0x4000 to peer1 expired
		number uint16
		peer   netip.AddrPort
		want   int
	}{
		{"same pair while bound", -time.Second, 0x4000, peer1, 200},
		{"number to another peer while bound", -time.Second, 0x4000, other, 400},
		{"peer to another number while bound", -time.Second, 0x4001, peer1, 400},
		{"number to another peer in cooldown", 0, 0x4000, other, 400},
		{"peer to another number in cooldown", 299 * time.Second, 0x4001, peer1, 400},
		{"same pair in cooldown", 100 * time.Second, 0x4000, peer1, 200},
		{"number to another peer after cooldown", 300 * time.Second, 0x4000, other, 200},
		{"peer to another number after cooldown", 300 * time.Second, 0x4001, peer1, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			c := h.alice()
			c.mustAllocate(lifetime(3600))
			c.bind(0x4000, peer1)
			h.advance(DefaultChannelLifetime + tc.after)
			c.permit(peer1, other) // keep permissions out of the picture
			res := c.call(stun.MethodChannelBind, channelNumber(tc.number), peerAddr(tc.peer))
			if got := code(res); got != tc.want {
				t.Errorf("ChannelBind %#x to %s = %d, want %d", tc.number, tc.peer, got, tc.want)
			}
			if tc.want == 200 {
				if out := c.channelData(tc.number, []byte("x")); len(out) != 1 || out[0].To != tc.peer {
					t.Errorf("ChannelData on the new binding: %v, want one datagram to %s", out, tc.peer)
				}
			}
		})
	}
}

// TestRelaying covers the four user-space paths and what stops each.
func TestRelaying(t *testing.T) {
	h := newHarness(t, nil)
	c := h.alice()
	relayed := c.mustAllocate()[0]
	payload := []byte("payload")

	if out := c.send(peer1, payload); len(out) != 0 {
		t.Errorf("Send without permission relayed %v", out)
	}
	if out := h.fromPeer(peer1, relayed, payload); len(out) != 0 {
		t.Errorf("peer without permission relayed %v", out)
	}
	c.permit(peer1)

	got := c.send(peer1, payload)
	want := []Transmit{{From: relayed, To: peer1, Payload: payload}}
	if diff := diff(want, got); diff != "" {
		t.Errorf("Send (-want +got):\n%s", diff)
	}
	got = c.send(peer1, payload, dontFragment)
	want[0].DontFragment = true
	if diff := diff(want, got); diff != "" {
		t.Errorf("Send with DONT-FRAGMENT (-want +got):\n%s", diff)
	}

	// Peer → client without a channel: a Data indication.
	got = h.fromPeer(peer1, relayed, payload)
	if len(got) != 1 || got[0].From != listen4 || got[0].To != client1 {
		t.Fatalf("peer data = %v, want one datagram from %s to %s", got, listen4, client1)
	}
	ind := decode(t, got[0].Payload)
	if ind.Type != stun.NewType(stun.MethodData, stun.ClassIndication) {
		t.Errorf("peer data type = %v, want Data indication", ind.Type)
	}
	if from := xorAddrs(ind, stun.AttrXORPeerAddress); !equal(from, []netip.AddrPort{peer1}) {
		t.Errorf("Data XOR-PEER-ADDRESS = %v, want %v", from, peer1)
	}
	if d, _ := ind.Get(stun.AttrData); !bytes.Equal(d, payload) {
		t.Errorf("Data DATA = %q, want %q", d, payload)
	}

	c.bind(0x4001, peer1)
	// Peer → client with a channel: ChannelData, unpadded.
	got = h.fromPeer(peer1, relayed, payload)
	want = []Transmit{{From: listen4, To: client1, Payload: append([]byte{0x40, 0x01, 0, 7}, payload...)}}
	if diff := diff(want, got); diff != "" {
		t.Errorf("peer data on a channel (-want +got):\n%s", diff)
	}
	// Client → peer: padding and trailing bytes after the length are not data.
	got = h.fromClient(client1, listen4, []byte{0x40, 0x01, 0, 3, 'a', 'b', 'c', 0})
	want = []Transmit{{From: relayed, To: peer1, Payload: []byte("abc")}}
	if diff := diff(want, got); diff != "" {
		t.Errorf("padded ChannelData (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name string
		out  []Transmit
	}{
		{"ChannelData on an unbound channel", c.channelData(0x4002, payload)},
		{"ChannelData shorter than its length", h.fromClient(client1, listen4, []byte{0x40, 0x01, 0, 9, 'a'})},
		{"ChannelData from another 5-tuple", h.fromClient(client2, listen4, []byte{0x40, 0x01, 0, 1, 'a'})},
		{"ChannelData to another listen address", h.fromClient(client1, listen6, []byte{0x40, 0x01, 0, 1, 'a'})},
		{"peer data from an unpermitted peer", h.fromPeer(peer2, relayed, payload)},
		{"peer data to an unknown relayed address", h.fromPeer(peer1, netip.AddrPortFrom(relay4, 1), payload)},
		{"Send to a hostile peer", c.send(netip.MustParseAddrPort("127.0.0.1:53"), payload)},
		{"Send to an IPv6 peer of an IPv4 allocation", c.send(peer6, payload)},
		{"Send with an unknown comprehension-required attribute", c.send(peer1, payload, rawAttr(0x7FFF, nil))},
		{"Send without DATA", h.fromClient(client1, listen4, func() []byte {
			m, _ := stun.Build(stun.NewType(stun.MethodSend, stun.ClassIndication), stun.TransactionID, peerAddr(peer1))
			return m.Raw
		}())},
		{"Send from a client without allocation", h.fromClient(client2, listen4, func() []byte {
			m, _ := stun.Build(stun.NewType(stun.MethodSend, stun.ClassIndication), stun.TransactionID, peerAddr(peer1), rawAttr(stun.AttrData, payload))
			return m.Raw
		}())},
		{"a datagram from port 0", h.fromClient(netip.AddrPortFrom(client1.Addr(), 0), listen4, []byte{0x40, 0x01, 0, 1, 'a'})},
		{"neither STUN nor ChannelData", h.fromClient(client1, listen4, []byte{0x80, 0, 0, 0})},
		{"a STUN response", h.fromClient(client1, listen4, func() []byte {
			m, _ := stun.Build(stun.NewType(stun.MethodBinding, stun.ClassSuccessResponse), stun.TransactionID)
			return m.Raw
		}())},
		{"a Data indication from a client", h.fromClient(client1, listen4, func() []byte {
			m, _ := stun.Build(stun.NewType(stun.MethodData, stun.ClassIndication), stun.TransactionID, peerAddr(peer1), rawAttr(stun.AttrData, payload))
			return m.Raw
		}())},
	} {
		if len(tc.out) != 0 {
			t.Errorf("%s: relayed %v, want nothing", tc.name, tc.out)
		}
	}
	st := h.s.Stats()
	want4 := [NumPaths]Traffic{
		PathChannelToPeer: {1, 3}, PathSendToPeer: {2, 14}, PathPeerToChannel: {1, 7}, PathPeerToData: {1, 7},
	}
	if diff := diff(want4, st.Relayed); diff != "" {
		t.Errorf("Stats.Relayed (-want +got):\n%s", diff)
	}
}

// TestDualStack covers ADDITIONAL-ADDRESS-FAMILY: one allocation, two
// relayed addresses on one port, each reaching peers of its family.
func TestDualStack(t *testing.T) {
	h := newHarness(t, nil)
	c := h.alice()
	relayed := c.mustAllocate(additionalFamily(familyIPv6))
	if len(relayed) != 2 || !relayed[0].Addr().Is4() || relayed[1].Addr() != relay6 || relayed[0].Port() != relayed[1].Port() {
		t.Fatalf("dual-stack relayed addresses = %v, want IPv4 and IPv6 on one port", relayed)
	}
	var created []netip.AddrPort
	for _, e := range h.events {
		if e.Kind == AllocationCreated {
			created = append(created, e.Binding.Relayed)
		}
	}
	if !equal(created, relayed) {
		t.Errorf("AllocationCreated events for %v, want %v", created, relayed)
	}
	c.bind(0x4000, peer1)
	c.bind(0x4001, peer6)
	if out := c.channelData(0x4001, []byte("six")); len(out) != 1 || out[0].From != relayed[1] || out[0].To != peer6 {
		t.Errorf("ChannelData to the IPv6 peer: %v, want from %s to %s", out, relayed[1], peer6)
	}
	if out := h.fromPeer(peer6, relayed[1], []byte("x")); len(out) != 1 || out[0].To != client1 {
		t.Errorf("IPv6 peer to the IPv4 client: %v", out)
	}
	// Dropping the IPv6 half keeps the IPv4 one.
	if got := lifetimeOf(c.mustSucceed(stun.MethodRefresh, requestedFamily(familyIPv6), lifetime(0))); got != 0 {
		t.Errorf("Refresh IPv6 LIFETIME 0 answered %d", got)
	}
	if diff := diff(state{Allocations: 1, Permissions: 1, Channels: 1, Bindings: 1}, h.state()); diff != "" {
		t.Errorf("after dropping IPv6 (-want +got):\n%s", diff)
	}
	if h.sockets[relayed[1]] || !h.sockets[relayed[0]] {
		t.Errorf("sockets after dropping IPv6: %v, want only %s", h.sockets, relayed[0])
	}
	if res := c.call(stun.MethodRefresh, requestedFamily(familyIPv6)); code(res) != 443 {
		t.Errorf("refreshing the dropped family: %d, want 443", code(res))
	}
	if res := c.call(stun.MethodCreatePermission, peerAddr(peer6)); code(res) != 443 {
		t.Errorf("IPv6 permission after dropping IPv6: %d, want 443", code(res))
	}
}

// TestIPv6Client: the client's family does not decide the relay's.
func TestIPv6Client(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client(client6, "alice", "secret")
	c.server = listen6
	res := c.allocate()
	if got := xorAddrs(res, stun.AttrXORMappedAddress); !equal(got, []netip.AddrPort{client6}) {
		t.Errorf("XOR-MAPPED-ADDRESS = %v, want %v", got, client6)
	}
	if got := xorAddrs(res, stun.AttrXORRelayedAddress); len(got) != 1 || !got[0].Addr().Is4() {
		t.Errorf("XOR-RELAYED-ADDRESS = %v, want IPv4 (the default family)", got)
	}
	c.bind(0x4000, peer1)
	got := h.fromPeer(peer1, xorAddrs(res, stun.AttrXORRelayedAddress)[0], []byte("hi"))
	if len(got) != 1 || got[0].From != listen6 || got[0].To != client6 {
		t.Errorf("to an IPv6 client: %v, want from %s to %s", got, listen6, client6)
	}
}

func TestAllocateRetransmission(t *testing.T) {
	h := newHarness(t, nil)
	c := h.alice()
	c.challenge()
	c.newTxn()
	pkt := c.build(stun.MethodAllocate, transport(protoUDP))
	first := c.do(pkt)
	h.advance(10 * time.Second)
	again := c.do(pkt)
	if code(again) != 200 || !equal(xorAddrs(first, stun.AttrXORRelayedAddress), xorAddrs(again, stun.AttrXORRelayedAddress)) {
		t.Errorf("retransmitted Allocate: %v, want the same success as %v", again, first)
	}
	if got := lifetimeOf(again); got != 590 {
		t.Errorf("retransmission LIFETIME = %d, want 590 (what is left)", got)
	}
	if n := h.s.Stats().Allocations; n != 1 {
		t.Errorf("allocations = %d, want 1", n)
	}
}

func TestEvenPortAndReservation(t *testing.T) {
	h := newHarness(t, nil)
	c := h.alice()
	res := c.allocate(evenPort(true))
	relayed := xorAddrs(res, stun.AttrXORRelayedAddress)[0]
	if relayed.Port()%2 != 0 {
		t.Errorf("EVEN-PORT gave port %d", relayed.Port())
	}
	token, err := res.Get(stun.AttrReservationToken)
	if err != nil || len(token) != 8 {
		t.Fatalf("RESERVATION-TOKEN = %x, %v; want 8 bytes", token, err)
	}
	// The reserved port is nobody else's...
	for i := range 50 {
		other := h.client(netip.AddrPortFrom(client2.Addr(), uint16(41000+i)), "bob", "hunter2")
		if got := other.mustAllocate()[0]; got.Port() == relayed.Port()+1 {
			t.Fatalf("allocation %d got the reserved port %d", i, got.Port())
		}
	}
	// ...but the token's.
	d := h.client(netip.AddrPortFrom(client2.Addr(), 42000), "bob", "hunter2")
	got := d.mustAllocate(rawAttr(stun.AttrReservationToken, token))
	if !equal(got, []netip.AddrPort{netip.AddrPortFrom(relay4, relayed.Port()+1)}) {
		t.Errorf("Allocate with the token = %v, want port %d", got, relayed.Port()+1)
	}
	// A token is good once.
	e := h.client(netip.AddrPortFrom(client2.Addr(), 42001), "bob", "hunter2")
	if res := e.allocate(rawAttr(stun.AttrReservationToken, token)); code(res) != 508 {
		t.Errorf("reusing a token: %d, want 508", code(res))
	}
	// A token expires after 30 s.
	f := h.client(netip.AddrPortFrom(client2.Addr(), 42002), "bob", "hunter2")
	res = f.allocate(evenPort(true))
	token, _ = res.Get(stun.AttrReservationToken)
	h.advance(30 * time.Second)
	g := h.client(netip.AddrPortFrom(client2.Addr(), 42003), "bob", "hunter2")
	if res := g.allocate(rawAttr(stun.AttrReservationToken, token)); code(res) != 508 {
		t.Errorf("an expired token: %d, want 508", code(res))
	}
}

// TestBind: the core asks the I/O layer for each port and moves on when
// one is taken by someone else.
func TestBind(t *testing.T) {
	var asked [][]netip.AddrPort
	h := newHarness(t, func(c *Config) {
		c.Bind = func(relayed []netip.AddrPort) error {
			asked = append(asked, append([]netip.AddrPort(nil), relayed...))
			if len(asked) <= 3 {
				return errBusy
			}
			return nil
		}
	})
	got := h.alice().mustAllocate(additionalFamily(familyIPv6))
	if len(asked) != 4 || !equal(asked[3], got) {
		t.Errorf("Bind calls %v, then allocated %v; want 4 calls, the last one allocated", asked, got)
	}
	for _, a := range asked {
		if len(a) != 2 || a[0].Port() != a[1].Port() {
			t.Errorf("Bind(%v): want an IPv4 and an IPv6 address on one port", a)
		}
	}
	if n := h.s.Stats().BindFailures; n != 3 {
		t.Errorf("BindFailures = %d, want 3", n)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

const errBusy = errString("address in use")

// TestRefreshStormKeepsTimersBounded: a client refreshing in a loop does
// not grow the timer heap; each object has one timer pending.
func TestRefreshStormKeepsTimersBounded(t *testing.T) {
	h := newHarness(t, nil)
	c := h.alice()
	c.mustAllocate()
	for range 2000 {
		c.bind(0x4000, peer1)
		c.mustSucceed(stun.MethodRefresh)
		h.now = h.now.Add(100 * time.Millisecond) // no HandleTimeout in between
	}
	// An allocation, a permission and a channel, plus the source sweep.
	if n := len(h.s.timers); n > 4 {
		t.Errorf("timer heap holds %d timers after 2000 refreshes, want at most 4", n)
	}
	h.advance(time.Hour)
	if diff := diff(state{}, h.state()); diff != "" {
		t.Errorf("an hour later (-want +got):\n%s", diff)
	}
}

// TestLateTimeout: an I/O layer that calls HandleTimeout late still never
// relays through an expired allocation, channel or permission, and gets the
// deletion events from whichever call notices first.
func TestLateTimeout(t *testing.T) {
	h := newHarness(t, nil)
	c := h.alice()
	relayed := c.mustAllocate()[0]
	c.bind(0x4000, peer1)

	h.now = h.now.Add(301 * time.Second) // the permission has run out
	if out := c.channelData(0x4000, []byte("x")); len(out) != 0 {
		t.Errorf("ChannelData after the permission expired: %v", out)
	}
	if out := h.fromPeer(peer1, relayed, []byte("x")); len(out) != 0 {
		t.Errorf("peer data after the permission expired: %v", out)
	}
	h.now = h.now.Add(300 * time.Second) // the allocation has run out
	if out := h.fromPeer(peer1, relayed, []byte("x")); len(out) != 0 {
		t.Errorf("peer data after the allocation expired: %v", out)
	}
	if diff := diff(state{}, h.state()); diff != "" {
		t.Errorf("after noticing the expiry (-want +got):\n%s", diff)
	}
	if len(h.sockets) != 0 {
		t.Errorf("sockets still open: %v", h.sockets)
	}
	// The timers that fire now find nothing left to do.
	h.advance(time.Hour)
	// A new Allocate on the same 5-tuple works.
	c.mustAllocate()
}
