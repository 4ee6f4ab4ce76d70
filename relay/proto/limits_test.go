package proto

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// strictUnauth restores the default unauthenticated-answer limits that
// testConfig loosens.
func strictUnauth(c *Config) { c.UnauthRate, c.UnauthBurst, c.Amplification = 0, 0, 0 }

// TestUnauthenticatedAnswersNeverAmplify: whatever a source sends without
// credentials, the relay sends it back no more bytes than it received,
// Binding excepted.
func TestUnauthenticatedAnswersNeverAmplify(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for run := range 50 {
		h := newHarness(t, strictUnauth)
		src := netip.AddrPortFrom(client1.Addr(), uint16(40000+run))
		c := h.client(src, "alice", "secret")
		var in, out, answered int
		for range 40 {
			var pkt []byte
			switch r.IntN(4) {
			case 0: // a first Allocate as pion sends it: 36 bytes
				pkt = c.unauth(stun.MethodAllocate, transport(protoUDP), stun.Fingerprint)
			case 1: // padded with SOFTWARE of some length
				pkt = c.unauth(stun.MethodAllocate, transport(protoUDP), stun.NewSoftware(strings.Repeat("x", r.IntN(120))))
			case 2: // wrong credentials
				c.nonce = "obMatJos2gAAAnot-a-nonce-of-ours-xxxxxxx"
				c.newTxn()
				pkt = c.build(stun.MethodRefresh)
			case 3: // an unknown method
				pkt = c.unauth(stun.Method(0x0FF))
			}
			in += len(pkt)
			for _, tr := range h.fromClient(src, listen4, pkt) {
				out += len(tr.Payload)
				answered++
			}
			if out > in {
				t.Fatalf("run %d: answered %d bytes to %d received", run, out, in)
			}
			h.advance(time.Duration(r.IntN(300)) * time.Millisecond)
		}
		if answered == 0 {
			t.Errorf("run %d: nothing answered; a client could never authenticate", run)
		}
	}
}

// TestFirstAllocateOfAPionClient: pion's (and browsers') first Allocate is
// 36 bytes, the 401 about 100: the relay answers the third transmission.
func TestFirstAllocateOfAPionClient(t *testing.T) {
	h := newHarness(t, strictUnauth)
	c := h.alice()
	pkt := c.unauth(stun.MethodAllocate, transport(protoUDP), stun.Fingerprint)
	if len(pkt) != 36 {
		t.Fatalf("request is %d bytes, want 36 like pion's", len(pkt))
	}
	var got []int
	for range 4 {
		for _, tr := range h.fromClient(client1, listen4, pkt) {
			got = append(got, len(tr.Payload))
		}
		h.advance(200 * time.Millisecond) // pion's RTO
	}
	if len(got) != 1 || got[0] > 3*36 {
		t.Errorf("answers to 4 transmissions: sizes %v, want one 401 of at most 108 bytes", got)
	}
	// The fourth is not answered either: the 401 spent the budget.
	if h.s.Stats().Dropped["amplification"] != 3 {
		t.Errorf("Dropped = %v, want 3 for amplification", h.s.Stats().Dropped)
	}
	// With a bigger budget the first transmission is answered.
	h = newHarness(t, func(c *Config) { strictUnauth(c); c.Amplification = 3 })
	if out := h.fromClient(client1, listen4, pkt); len(out) != 1 {
		t.Errorf("with unauth-amplification 3: %d answers to the first Allocate, want 1", len(out))
	}
}

func TestUnauthenticatedRateLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.UnauthRate, c.UnauthBurst = 2, 3 })
	c := h.alice()
	count := func() int {
		n := 0
		for range 10 {
			n += len(h.fromClient(client1, listen4, c.unauth(stun.MethodBinding)))
		}
		return n
	}
	if n := count(); n != 3 {
		t.Errorf("10 Bindings at once: %d answered, want the burst of 3", n)
	}
	h.advance(time.Second)
	if n := count(); n != 2 {
		t.Errorf("10 Bindings a second later: %d answered, want the rate of 2", n)
	}
	// Another source has its own budget.
	if n := len(h.fromClient(client2, listen4, c.unauth(stun.MethodBinding))); n != 1 {
		t.Errorf("another source: %d answers, want 1", n)
	}
	// Authenticated requests are not limited.
	h.advance(time.Second)
	c.mustAllocate()
	for range 10 {
		c.mustSucceed(stun.MethodRefresh)
	}
}

func TestMaxSources(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxSources = 2 })
	req := h.alice().unauth(stun.MethodBinding)
	for i, want := range []int{1, 1, 0} {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 9, byte(i)}), 5000)
		if n := len(h.fromClient(src, listen4, req)); n != want {
			t.Errorf("source %d: %d answers, want %d", i, n, want)
		}
	}
	h.advance(2 * time.Minute) // the first two go idle and are forgotten
	if n := len(h.fromClient(netip.MustParseAddrPort("198.18.9.3:5000"), listen4, req)); n != 1 {
		t.Errorf("a new source once others went idle: %d answers, want 1", n)
	}
}

func TestBinding(t *testing.T) {
	mapped := netip.MustParseAddrPort("[::ffff:198.18.1.10]:40000")
	for _, tc := range []struct {
		name     string
		from     netip.AddrPort
		setters  []stun.Setter
		want     int
		mapped   netip.AddrPort
		software bool
		fp       bool
	}{
		{name: "IPv4", from: client1, want: 200, mapped: client1},
		{name: "IPv6", from: client6, want: 200, mapped: client6},
		{name: "IPv4-mapped source", from: mapped, want: 200, mapped: client1},
		{name: "FINGERPRINT mirrored", from: client1, setters: []stun.Setter{stun.Fingerprint}, want: 200, mapped: client1, fp: true},
		{name: "SOFTWARE when it fits", from: client1, setters: []stun.Setter{stun.NewSoftware(strings.Repeat("s", 40))}, want: 200, mapped: client1, software: true},
		{name: "auth attributes are ignored", from: client1, setters: []stun.Setter{stun.NewUsername("x"), stun.NewRealm("y"), stun.NewNonce("z"), stun.NewShortTermIntegrity("k")}, want: 200, mapped: client1, software: true},
		{name: "CHANGE-REQUEST is unknown", from: client1, setters: []stun.Setter{rawAttr(stun.AttrChangeRequest, []byte{0, 0, 0, 4})}, want: 420},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			c := h.client(tc.from, "", "")
			c.addr = unmapAddrPort(tc.from)
			req := c.unauth(stun.MethodBinding, tc.setters...)
			out := h.fromClient(tc.from, listen4, req)
			if len(out) != 1 {
				t.Fatalf("%d answers, want 1", len(out))
			}
			if out[0].To != unmapAddrPort(tc.from) {
				t.Errorf("answer to %s, want %s", out[0].To, unmapAddrPort(tc.from))
			}
			res := decode(t, out[0].Payload)
			if got := code(res); got != tc.want {
				t.Fatalf("answer %v code %d, want %d", res, got, tc.want)
			}
			if tc.want == 200 {
				if got := xorAddrs(res, stun.AttrXORMappedAddress); !equal(got, []netip.AddrPort{tc.mapped}) {
					t.Errorf("XOR-MAPPED-ADDRESS = %v, want %v", got, tc.mapped)
				}
			}
			if got := res.Contains(stun.AttrSoftware); got != tc.software {
				t.Errorf("SOFTWARE present = %v, want %v", got, tc.software)
			}
			if got := res.Contains(stun.AttrFingerprint); got != tc.fp {
				t.Errorf("FINGERPRINT present = %v, want %v", got, tc.fp)
			}
			if tc.want == 420 {
				var u stun.UnknownAttributes
				if err := u.GetFrom(res); err != nil || len(u) != 1 || u[0] != stun.AttrChangeRequest {
					t.Errorf("UNKNOWN-ATTRIBUTES = %v, %v; want CHANGE-REQUEST", u, err)
				}
			}
			if len(out[0].Payload) > 44 && len(out[0].Payload) > len(req) {
				t.Errorf("answer of %d bytes to a request of %d", len(out[0].Payload), len(req))
			}
		})
	}
}

func TestBandwidth(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Bandwidth = 100_000 })
	c := h.alice()
	relayed := c.mustAllocate()[0]
	c.bind(0x4000, peer1)
	data := make([]byte, 1000)
	n := 0
	for range 150 {
		n += len(c.channelData(0x4000, data))
	}
	if n != 100 {
		t.Errorf("150 × 1000 bytes at once: %d relayed, want the one-second burst of 100", n)
	}
	h.advance(10 * time.Millisecond) // refills 1000 bytes
	if out := h.fromPeer(peer1, relayed, data); len(out) != 1 {
		t.Errorf("10 ms later, the other direction: %d relayed, want 1", len(out))
	}
	if out := c.send(peer1, data); len(out) != 0 {
		t.Errorf("Send over the cap relayed %v", out)
	}
	if got := h.s.Stats().Dropped["bandwidth"]; got != 51 {
		t.Errorf("bandwidth drops = %d, want 51", got)
	}
}

// TestChargeRelayed: what another data plane relayed is charged to the
// allocation's bandwidth, past the cap as a debt that only time pays back,
// while the user-space path relays nothing until it is paid.
func TestChargeRelayed(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Bandwidth = 100_000 })
	c := h.alice()
	c.mustAllocate()
	c.bind(0x4000, peer1)
	var b Binding
	for b = range h.s.Bindings() {
	}
	data := make([]byte, 1000)

	steps := []struct {
		advance time.Duration
		charge  uint64
		want    bool
	}{
		{0, 60_000, true},                   // within the one-second burst of 100 000
		{0, 40_000, false},                  // exactly used up: nothing left
		{0, 250_000, false},                 // 250 000 in debt
		{time.Second, 0, false},             // 150 000 in debt
		{1500 * time.Millisecond, 0, false}, // paid back, nothing left
		{10 * time.Millisecond, 0, true},    // 1000 to spend
		{time.Minute, 150_000, false},       // refilled to the burst only: 50 000 in debt
		{501 * time.Millisecond, 0, true},   // paid back, 100 left
		{10 * time.Second, 0, true},         // idle
		{0, 99_000, true},                   // 1000 left of the burst
	}
	for i, st := range steps {
		h.advance(st.advance)
		if got := h.s.ChargeRelayed(b, st.charge, h.now); got != st.want {
			t.Errorf("step %d: after %v, ChargeRelayed(%d) = %v, want %v", i, st.advance, st.charge, got, st.want)
		}
	}
	if n := len(c.channelData(0x4000, data)); n != 1 {
		t.Errorf("1000 bytes with 1000 left: %d relayed in user space, want 1", n)
	}
	if n := len(c.channelData(0x4000, data)); n != 0 {
		t.Errorf("1000 more with none left: %d relayed in user space, want 0", n)
	}

	gone := b
	gone.Relayed = netip.AddrPortFrom(relay4, 1)
	if !h.s.ChargeRelayed(gone, 1<<30, h.now) {
		t.Error("ChargeRelayed for no allocation = false, want true")
	}
	uncapped := newHarness(t, nil)
	if !uncapped.s.ChargeRelayed(b, 1<<40, uncapped.now) {
		t.Error("ChargeRelayed without a cap = false, want true")
	}
}

// TestHostilePeersThroughTheCore: the policy's hostile table, as a client
// would try it, in both encodings of XOR-PEER-ADDRESS.
func TestHostilePeersThroughTheCore(t *testing.T) {
	hostile := []string{
		"127.0.0.1:80", "::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "::ffff:10.0.0.1",
		"169.254.169.254:80", "::ffff:169.254.169.254", "100.64.0.1:1", "0.0.0.0:1", "255.255.255.255:1",
		"224.0.0.1:1", "240.0.0.1:1", "192.0.2.1:1", "198.51.100.1:1", "203.0.113.1:1",
		"[::1]:80", "[fe80::1]:80", "[fc00::1]:80", "[ff02::1]:80", "[2002:7f00:1::]:80",
		"[2001::1]:80", "[2001:db8::1]:80", "[64:ff9b:1::1]:80", "198.18.0.1:3478", // the relay's own listen port
	}
	h := newHarness(t, func(c *Config) { c.RelayAddresses = []netip.Addr{relay4, relay6} })
	c := h.alice()
	relayed := c.mustAllocate(additionalFamily(familyIPv6))
	c.permit(peer1)
	for _, s := range hostile {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			ap = netip.AddrPortFrom(netip.MustParseAddr(s), 80)
		}
		encodings := []stun.Setter{peerAddr(ap)}
		if ap.Addr().Is4() {
			encodings = append(encodings, peerAddr16(ap))
		}
		for _, enc := range encodings {
			if ap.Port() != 3478 {
				if got := code(c.call(stun.MethodCreatePermission, enc)); got != 403 {
					t.Errorf("CreatePermission %s (%T): %d, want 403", ap, enc, got)
				}
			}
			if got := code(c.call(stun.MethodChannelBind, channelNumber(0x4000), enc)); got != 403 {
				t.Errorf("ChannelBind %s (%T): %d, want 403", ap, enc, got)
			}
			c.newTxn()
			m, _ := stun.Build(stun.NewType(stun.MethodSend, stun.ClassIndication), stun.NewTransactionIDSetter(c.txn), enc, rawAttr(stun.AttrData, []byte("x")))
			if out := h.fromClient(client1, listen4, m.Raw); len(out) != 0 {
				t.Errorf("Send to %s (%T) relayed %v", ap, enc, out)
			}
		}
	}
	if len(h.plane) != 0 {
		t.Errorf("data plane holds %v after hostile requests", h.plane)
	}
	// A benchmarking address in IPv4-mapped form is its IPv4 address: the
	// permission is for it and data goes to it, from the IPv4 relayed address.
	c.mustSucceed(stun.MethodChannelBind, channelNumber(0x4001), peerAddr16(peer2))
	if out := c.channelData(0x4001, []byte("x")); len(out) != 1 || out[0].To != peer2 || out[0].From != relayed[0] {
		t.Errorf("ChannelData to a peer bound in mapped form: %v, want from %s to %s", out, relayed[0], peer2)
	}
	if got := h.s.Stats().RefusedPeers["loopback"]; got == 0 {
		t.Errorf("RefusedPeers = %v, want loopback counted", h.s.Stats().RefusedPeers)
	}
}

// TestNonceExpiry: a client that keeps an allocation for hours sees its
// nonce go stale every nonce-lifetime, gets 438 and carries on.
func TestNonceExpiry(t *testing.T) {
	h := newHarness(t, nil)
	c := h.alice()
	c.mustAllocate(lifetime(3600))
	stale := 0
	for range 36 { // three hours of refreshes every 5 minutes
		h.advance(5 * time.Minute)
		res := c.do(c.authed(stun.MethodRefresh, lifetime(3600)))
		if code(res) == 438 {
			stale++
			var n stun.Nonce
			if err := n.GetFrom(res); err != nil {
				t.Fatalf("438 without NONCE")
			}
			c.nonce = n.String()
			res = c.do(c.authed(stun.MethodRefresh, lifetime(3600)))
		}
		if code(res) != 200 {
			t.Fatalf("Refresh: %d", code(res))
		}
	}
	// The nonce lives 600 s: it goes stale on every second refresh.
	if stale != 18 {
		t.Errorf("438s in 3 hours = %d, want 18", stale)
	}
	if h.s.Stats().Allocations != 1 {
		t.Errorf("allocation lost")
	}
}

// TestRESTCredentialExpiry: an allocation outlives nothing of its
// credential: once the REST username has expired, Refresh fails and the
// allocation runs out.
func TestRESTCredentialExpiry(t *testing.T) {
	h := newHarness(t, nil)
	u := "1700000900:carol" // t0 + 15 minutes
	c := h.client(client1, u, restPassword(u))
	c.mustAllocate()
	h.advance(9 * time.Minute)
	c.mustSucceed(stun.MethodRefresh)
	h.advance(7 * time.Minute)
	if got := code(c.call(stun.MethodRefresh)); got != 401 {
		t.Errorf("Refresh with an expired REST credential: %d, want 401", got)
	}
	h.advance(10 * time.Minute)
	if n := h.s.Stats().Allocations; n != 0 {
		t.Errorf("allocations = %d, want 0", n)
	}
}
