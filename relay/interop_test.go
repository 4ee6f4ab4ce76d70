package relay

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/relaybox/relaybox/netcfg/nstest"
	"github.com/relaybox/relaybox/relay/auth"
	"github.com/relaybox/relaybox/relay/proto"
)

// topology is three namespaces: a TURN client, the relay and a peer, on two
// veth links, with addresses from the benchmarking ranges only:
//
//	client c0 198.18.0.2, 2001:2:0:1::2 ── r0 198.18.0.1, 2001:2:0:1::1  relay (listen)
//	                                        r1 198.18.1.1, 2001:2:0:2::1  relay (relay-address)
//	peer   p0 198.18.1.2, 2001:2:0:2::2 ──┘
type topology struct {
	client, relay, peer *nstest.NS
}

var (
	clientIP4 = netip.MustParseAddr("198.18.0.2")
	clientIP6 = netip.MustParseAddr("2001:2:0:1::2")
	listenIP4 = netip.MustParseAddr("198.18.0.1")
	listenIP6 = netip.MustParseAddr("2001:2:0:1::1")
	relayIP4  = netip.MustParseAddr("198.18.1.1")
	relayIP6  = netip.MustParseAddr("2001:2:0:2::1")
	peerIP4   = netip.MustParseAddr("198.18.1.2")
	peerIP6   = netip.MustParseAddr("2001:2:0:2::2")

	benchmarkingRanges = []string{"198.18.0.0/15", "2001:2::/48"}
)

func newTopology(t testing.TB) *topology {
	t.Helper()
	tp := &topology{client: nstest.New(t), relay: nstest.New(t), peer: nstest.New(t)}
	nstest.Veth(t, tp.client, "c0", tp.relay, "r0")
	nstest.Veth(t, tp.peer, "p0", tp.relay, "r1")
	for _, a := range []struct {
		ns   *nstest.NS
		dev  string
		addr string
	}{
		{tp.client, "c0", "198.18.0.2/24"}, {tp.client, "c0", "2001:2:0:1::2/64"},
		{tp.relay, "r0", "198.18.0.1/24"}, {tp.relay, "r0", "2001:2:0:1::1/64"},
		{tp.relay, "r1", "198.18.1.1/24"}, {tp.relay, "r1", "2001:2:0:2::1/64"},
		{tp.peer, "p0", "198.18.1.2/24"}, {tp.peer, "p0", "2001:2:0:2::2/64"},
	} {
		args := []string{"addr", "add", a.addr, "dev", a.dev}
		if netip.MustParsePrefix(a.addr).Addr().Is6() {
			args = append([]string{"-6"}, append(args, "nodad")...)
		}
		a.ns.MustRun(t, "ip", args...)
	}
	return tp
}

// startRelay runs a relay in tp's relay namespace on port, listening on
// both families, with relay addresses on the peer side.
func (tp *topology) startRelay(t testing.TB, port uint16, plane DataPlane, keys ...string) *running {
	t.Helper()
	cfg := testConfig(t, []netip.AddrPort{netip.AddrPortFrom(listenIP4, port), netip.AddrPortFrom(listenIP6, port)},
		[]netip.Addr{relayIP4, relayIP6}, benchmarkingRanges...)

	for i := 0; i+1 < len(keys); i += 2 {
		if err := setKey(&cfg, keys[i], keys[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	return startServer(t, cfg, Options{DataPlane: plane, InNamespace: tp.relay.Do})
}

// setKey sets one key of an existing Config, as the flag would.
func setKey(c *Config, key, value string) error {
	// NewFlagSet resets c to the defaults, and its flags write into c's
	// fields: put c's values back before setting the key.
	kept := *c
	fs := NewFlagSet(c)
	*c = kept
	return fs.Set(key, value)
}

// echoPeer runs an echo server in the peer namespace on a.
func (tp *topology) echoPeer(t testing.TB, a netip.AddrPort) *net.UDPConn {
	c := udpConn(t, tp.peer.Do, a)
	go echo(c)
	return c
}

// roundTrip writes msg to peer through the allocation and waits for the
// echo, retrying while pion's permission and channel binding settle.
func roundTrip(t testing.TB, tc *turnClient, peer net.Addr, msg []byte) {
	t.Helper()
	buf := make([]byte, 2048)
	for try := 0; ; try++ {
		if _, err := tc.relay.WriteTo(msg, peer); err != nil {
			t.Fatalf("WriteTo %v: %v", peer, err)
		}
		tc.relay.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, from, err := tc.relay.ReadFrom(buf)
		if err == nil {
			if !bytes.Equal(buf[:n], msg) || from.String() != peer.String() {
				t.Fatalf("echo: got %q from %v, want %q from %v", buf[:n], from, msg, peer)
			}
			return
		}
		if try == 10 {
			t.Fatalf("no echo of %q from %v through the relay: %v", msg, peer, err)
		}
	}
}

// untilChannelData makes round trips of msg through tc to peer, at least
// three, until ChannelData has gone both ways, in user space or the data
// plane: pion binds its channel in the background, sending Send
// indications meanwhile.
func untilChannelData(t *testing.T, r *running, tc *turnClient, peer net.Addr, msg string) {
	t.Helper()
	relayed := func(st Status, p proto.Path) uint64 {
		return st.Relayed[p.String()].Packets + st.DataPlane.Relayed[p.String()].Packets
	}
	deadline := time.Now().Add(10 * time.Second)
	for try := 0; ; try++ {
		roundTrip(t, tc, peer, []byte(msg))
		st := r.Status(0)
		if try >= 2 && relayed(st, proto.PathChannelToPeer) > 0 && relayed(st, proto.PathPeerToChannel) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pion sent no ChannelData in %d round trips over 10 s", try+1)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestInterop runs pion/turn's client, and a raw STUN client where pion
// cannot go, against the relay in namespaces, with UDP echo peers.
func TestInterop(t *testing.T) {
	tp := newTopology(t)
	clock := &seqClock{}
	plane := &recorder{clock: clock}
	r := tp.startRelay(t, 3478, plane)
	listen4, listen6 := r.listen[0], r.listen[1]
	peer4 := tp.echoPeer(t, netip.AddrPortFrom(peerIP4, 5000))
	peer6 := tp.echoPeer(t, netip.AddrPortFrom(peerIP6, 5000))

	t.Run("static user, IPv4: Send, ChannelBind, ChannelData both ways, Data", func(t *testing.T) {
		tc := newTURNClient(t, udpConn(t, tp.client.Do, netip.AddrPortFrom(clientIP4, 0)), listen4, testUser, testPass)
		if got := tc.relayedAddr().Addr(); got != relayIP4 {
			t.Errorf("relayed address %v, want one on %v", tc.relayedAddr(), relayIP4)
		}
		before := r.coreStats()
		// The first writes go as Send indications; later ones as
		// ChannelData.
		untilChannelData(t, r, tc, peer4.LocalAddr(), "ping")
		// A second port of the same peer IP has a permission but no
		// channel: it reaches the client as a Data indication.
		other := udpConn(t, tp.peer.Do, netip.AddrPortFrom(peerIP4, 5001))
		if _, err := other.WriteToUDPAddrPort([]byte("data indication"), tc.relayedAddr()); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		tc.relay.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := tc.relay.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "data indication" || from.String() != other.LocalAddr().String() {
			t.Fatalf("ReadFrom = %q from %v, %v; want the second port's datagram", buf[:n], from, err)
		}
		after := r.coreStats()
		for p := range proto.NumPaths {
			if after.Relayed[p].Packets <= before.Relayed[p].Packets {
				t.Errorf("path %v: %d packets relayed, want more than %d", p, after.Relayed[p].Packets, before.Relayed[p].Packets)
			}
		}
		// pion bound a channel to the echo peer: the data plane has it.
		want := proto.Binding{Client: netip.AddrPortFrom(clientIP4, tc.conn.LocalAddr().(*net.UDPAddr).AddrPort().Port()), Server: listen4,
			Relayed: tc.relayedAddr(), Peer: peer4.LocalAddr().(*net.UDPAddr).AddrPort()}
		found := false
		for _, e := range plane.snapshot() {
			b := e.e.Binding
			b.Channel = 0
			if e.e.Kind == proto.BindingCreated && b == want {
				found = true
			}
		}
		if !found {
			t.Errorf("data plane events %v, want BindingCreated for %v", plane.snapshot(), want)
		}
	})

	t.Run("REST credentials, each of two secrets", func(t *testing.T) {
		for _, secret := range []string{"rest-secret-1", testSecret} {
			user := auth.RESTUsername(time.Now().Add(time.Hour), "bob")
			tc := newTURNClient(t, udpConn(t, tp.client.Do, netip.AddrPortFrom(clientIP4, 0)), listen4, user, auth.RESTPassword(secret, user))
			roundTrip(t, tc, peer4.LocalAddr(), []byte("rest "+secret))
			tc.close()
		}
	})

	t.Run("bad credentials", func(t *testing.T) {
		expired := auth.RESTUsername(time.Now().Add(-time.Minute), "bob")
		for _, cred := range [][2]string{
			{testUser, "wrong"},
			{expired, auth.RESTPassword(testSecret, expired)},
			{"123:bob", auth.RESTPassword("not-a-secret", "123:bob")},
		} {
			before := r.coreStats().AuthFailures
			rc := newRawClient(t, udpConn(t, tp.client.Do, netip.AddrPortFrom(clientIP4, 0)), listen4, cred[0], cred[1])
			if res := rc.do(stun.MethodAllocate, udpTransport); errorCode(res) != 401 {
				t.Errorf("Allocate as %q: answer %v code %d, want 401", cred[0], res.Type, errorCode(res))
			}
			if after := r.coreStats().AuthFailures; after <= before {
				t.Errorf("auth failures %d after a bad credential, want more than %d", after, before)
			}
		}
	})

	t.Run("IPv6 client, IPv4 relayed address", func(t *testing.T) {
		// pion's client resolves its server as udp4 only: a raw client
		// talks to the relay over IPv6.
		rc := newRawClient(t, udpConn(t, tp.client.Do, netip.AddrPortFrom(clientIP6, 0)), listen6, testUser, testPass)
		relayed := rc.allocate()
		if len(relayed) != 1 || relayed[0].Addr() != relayIP4 {
			t.Fatalf("relayed %v, want one address on %v (IPv4 unless the client asks)", relayed, relayIP4)
		}
		p4 := peer4.LocalAddr().(*net.UDPAddr).AddrPort()
		mustSucceed(t, rc.do(stun.MethodChannelBind, peerAttr(p4), channelNumber(0x7FFF))) // an RFC 5766 number
		rc.send(channelData(0x7FFF, []byte("v6 client")))
		if ch, data, err := rc.readChannelData(5 * time.Second); err != nil || ch != 0x7FFF || string(data) != "v6 client" {
			t.Fatalf("ChannelData = %#x %q %v, want the echo on 0x7fff", ch, data, err)
		}
	})

	t.Run("IPv6 relayed address", func(t *testing.T) {
		// pion's client cannot ask for an IPv6 relayed address
		// (REQUESTED-ADDRESS-FAMILY): a raw client does.
		for _, from := range []netip.Addr{clientIP6, clientIP4} {
			server := listen6
			if from.Is4() {
				server = listen4
			}
			rc := newRawClient(t, udpConn(t, tp.client.Do, netip.AddrPortFrom(from, 0)), server, testUser, testPass)
			relayed := rc.allocate(familyIPv6)
			if len(relayed) != 1 || relayed[0].Addr() != relayIP6 {
				t.Fatalf("relayed %v, want one address on %v", relayed, relayIP6)
			}
			p6 := peer6.LocalAddr().(*net.UDPAddr).AddrPort()
			mustSucceed(t, rc.do(stun.MethodCreatePermission, peerAttr(p6)))
			send := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication), peerAttr(p6), dataAttr([]byte("send v6")))
			rc.send(send.Raw)
			if peer, data, err := rc.readData(5 * time.Second); err != nil || peer != p6 || string(data) != "send v6" {
				t.Fatalf("Data indication = %v %q %v, want the echo of the Send from %v", peer, data, err, p6)
			}
			mustSucceed(t, rc.do(stun.MethodChannelBind, peerAttr(p6), channelNumber(0x4001)))
			rc.send(channelData(0x4001, []byte("channel v6")))
			if ch, data, err := rc.readChannelData(5 * time.Second); err != nil || ch != 0x4001 || string(data) != "channel v6" {
				t.Fatalf("ChannelData = %#x %q %v, want the echo on 0x4001", ch, data, err)
			}
		}
	})

	t.Run("refused peers", func(t *testing.T) {
		// The policy's own tests have the full table; this is the I/O
		// layer's wiring of allow-peer and of the relay's addresses.
		rc := newRawClient(t, udpConn(t, tp.client.Do, netip.AddrPortFrom(clientIP4, 0)), listen4, testUser, testPass)
		rc.allocate()
		for _, p := range []string{"127.0.0.1:5000", "[::ffff:127.0.0.1]:5000", "[::127.0.0.1]:5000", "10.0.0.1:5000",
			"[::ffff:169.254.169.254]:80", "192.0.2.1:5000", "100.64.0.1:5000", "0.0.0.0:5000"} {
			if res := rc.do(stun.MethodCreatePermission, peerAttr(netip.MustParseAddrPort(p))); errorCode(res) != 403 {
				t.Errorf("CreatePermission %s: code %d, want 403", p, errorCode(res))
			}
		}
		// The relay's own listen port, even inside the allowed range.
		if res := rc.do(stun.MethodChannelBind, peerAttr(listen4), channelNumber(0x4000)); errorCode(res) != 403 {
			t.Errorf("ChannelBind to the listen address %v: code %d, want 403", listen4, errorCode(res))
		}
	})
}

// coreStats reads the core's counters.
func (r *running) coreStats() proto.Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.core.Stats()
}

// TestRefreshAndExpiry: with 2-second lifetimes, pion's client keeps its
// allocation by refreshing it, while a client that never refreshes loses
// its allocation, its socket and its data-plane binding.
func TestRefreshAndExpiry(t *testing.T) {
	tp := newTopology(t)
	plane := &recorder{clock: &seqClock{}}
	r := tp.startRelay(t, 3478, plane, "lifetime", "2", "max-lifetime", "2")
	listen4 := r.listen[0]
	peer4 := tp.echoPeer(t, netip.AddrPortFrom(peerIP4, 5000))
	p4 := peer4.LocalAddr().(*net.UDPAddr).AddrPort()

	tap := &wireTap{clock: &seqClock{}}
	var wg sync.WaitGroup
	wg.Go(func() {
		tap.PacketConn = udpConn(t, tp.client.Do, netip.AddrPortFrom(clientIP4, 0))
		tc := newTURNClient(t, tap, listen4, testUser, testPass)
		roundTrip(t, tc, peer4.LocalAddr(), []byte("before"))
		time.Sleep(3500 * time.Millisecond) // past the 2s lifetime
		roundTrip(t, tc, peer4.LocalAddr(), []byte("after"))
		if n := tap.count(stun.NewType(stun.MethodRefresh, stun.ClassSuccessResponse)); n < 2 {
			t.Errorf("%d Refresh successes on the wire in 3.5s of a 2s allocation, want 2 or more", n)
		}
	})

	rc := newRawClient(t, udpConn(t, tp.client.Do, netip.AddrPortFrom(clientIP4, 0)), listen4, testUser, testPass)
	relayed := rc.allocate()[0]
	mustSucceed(t, rc.do(stun.MethodChannelBind, peerAttr(p4), channelNumber(0x4000)))
	rc.send(channelData(0x4000, []byte("once")))
	if _, data, err := rc.readChannelData(5 * time.Second); err != nil || string(data) != "once" {
		t.Fatalf("ChannelData echo = %q, %v", data, err)
	}
	client := rc.c.LocalAddr().(*net.UDPAddr).AddrPort()
	alive := func() bool {
		for _, a := range r.Status(100).AllocationList {
			if a.Client == client.String() {
				return true
			}
		}
		return false
	}
	waitFor(t, 4*time.Second, "the unrefreshed allocation still exists", func() bool { return !alive() })
	deleted := false
	for _, e := range plane.snapshot() {
		if e.e.Kind == proto.BindingDeleted && e.e.Binding.Client == client && e.e.Binding.Relayed == relayed {
			deleted = true
		}
	}
	if !deleted {
		t.Errorf("data plane events %v: want BindingDeleted for %v's channel", plane.snapshot(), client)
	}
	r.mu.Lock()
	_, open := r.relayed[relayed]
	r.mu.Unlock()
	if open {
		t.Errorf("socket of expired allocation %v still open", relayed)
	}
	wg.Wait()
}

// wireTap is a client socket that notes, in order, the STUN messages read
// from it: what the client saw on the wire.
type wireTap struct {
	net.PacketConn
	clock *seqClock
	mu    sync.Mutex
	seen  []tapped
}

type tapped struct {
	seq uint64
	typ stun.MessageType
}

func (w *wireTap) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := w.PacketConn.ReadFrom(b)
	if err == nil && stun.IsMessage(b[:n]) {
		m := new(stun.Message)
		if stun.Decode(append([]byte(nil), b[:n]...), m) == nil {
			w.mu.Lock()
			w.seen = append(w.seen, tapped{w.clock.next(), m.Type})
			w.mu.Unlock()
		}
	}
	return n, from, err
}

func (w *wireTap) count(typ stun.MessageType) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.seen {
		if s.typ == typ {
			n++
		}
	}
	return n
}

func (w *wireTap) first(typ stun.MessageType) (uint64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.seen {
		if s.typ == typ {
			return s.seq, true
		}
	}
	return 0, false
}
