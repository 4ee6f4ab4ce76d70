package relay

import (
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/relaybox/relaybox/relay/proto"
)

// Benchmarks through real sockets on loopback: a client, the relay and an
// echo peer in this process, so each number is the whole machine's work
// (client, relay, peer and the kernel between them) on two cores.

const benchPayload = 1200 // a typical WebRTC media datagram

// benchSetup is a loopback relay with one allocation of a raw client, a
// permission and channel 0x4000 to an echo peer.
func benchSetup(b *testing.B) (rc *rawClient, peer netip.AddrPort) {
	b.Helper()
	r := loopbackRelay(b, Options{})
	pc := udpConn(b, nil, netip.AddrPortFrom(lo4, 0))
	go echo(pc)
	peer = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	rc = newRawClient(b, udpConn(b, nil, netip.AddrPortFrom(lo4, 0)), r.listen[0], testUser, testPass)
	rc.allocate()
	mustSucceed(b, rc.do(stun.MethodChannelBind, peerAttr(peer), channelNumber(0x4000)))
	return rc, peer
}

// window is how many datagrams are in flight: enough to keep every stage
// busy, few enough never to overflow a socket buffer on loopback.
const window = 64

// pump sends b.N copies of pkt with at most window in flight and reads as
// many answers, and reports relayed datagrams per second (two per round
// trip: to the peer and back).
func pump(b *testing.B, rc *rawClient, pkt []byte) {
	buf := make([]byte, 65536)
	b.SetBytes(int64(benchPayload))
	b.ReportAllocs()
	b.ResetTimer()
	sent, got := 0, 0
	for got < b.N {
		for sent < b.N && sent-got < window {
			if _, err := rc.c.WriteToUDPAddrPort(pkt, rc.server); err != nil {
				b.Fatal(err)
			}
			sent++
		}
		rc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := rc.c.ReadFromUDPAddrPort(buf); err != nil {
			b.Fatalf("after %d of %d answers: %v", got, b.N, err)
		}
		got++
	}
	b.StopTimer()
	b.ReportMetric(2*float64(b.N)/b.Elapsed().Seconds(), "relayed/s")
}

// BenchmarkRelayChannelData: ChannelData to the peer and back as
// ChannelData.
func BenchmarkRelayChannelData(b *testing.B) {
	rc, _ := benchSetup(b)
	pump(b, rc, channelData(0x4000, make([]byte, benchPayload)))
}

// BenchmarkRelaySendData: Send indications to a peer with a permission but
// no channel, back as Data indications.
func BenchmarkRelaySendData(b *testing.B) {
	rc, peer := benchSetup(b)
	// Another echo port of the same IP: the permission covers it, the
	// channel does not.
	pc := udpConn(b, nil, netip.AddrPortFrom(lo4, 0))
	go echo(pc)
	_ = peer
	other := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	send := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication), peerAttr(other), dataAttr(make([]byte, benchPayload)))
	pump(b, rc, send.Raw)
}

// BenchmarkAllocations: an authenticated Allocate and the Refresh that
// deletes it, through the relay's sockets: the control-plane cost of an
// allocation's life, socket open and close included.
func BenchmarkAllocations(b *testing.B) {
	r := loopbackRelay(b, Options{})
	rc := newRawClient(b, udpConn(b, nil, netip.AddrPortFrom(lo4, 0)), r.listen[0], testUser, testPass)
	rc.allocate()
	mustSucceed(b, rc.do(stun.MethodRefresh, lifetimeAttr(0)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		rc.allocate()
		mustSucceed(b, rc.do(stun.MethodRefresh, lifetimeAttr(0)))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "allocations/s")
}

// BenchmarkBytesPerAllocation measures the Go heap that 10,000 allocations
// hold in the TURN core (no sockets: Config.Bind is nil) and, separately,
// in the whole relay with their sockets (Go heap only; the kernel's socket
// memory is not counted).
func BenchmarkBytesPerAllocation(b *testing.B) {
	const n = 10_000
	b.Run("core", func(b *testing.B) {
		for range b.N {
			b.ReportMetric(coreBytesPerAllocation(b, n), "bytes/allocation")
		}
	})
}

func coreBytesPerAllocation(b *testing.B, n int) float64 {
	b.Helper()
	cfg := testConfig(b, []netip.AddrPort{netip.AddrPortFrom(lo4, 3478)}, []netip.Addr{netip.MustParseAddr("198.18.0.1")})
	cfg.PortMin, cfg.PortMax = 4000, 65535
	core, err := proto.New(cfg.Config)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	listen := cfg.Listen[0]
	var out proto.Output
	// Requests are built first, so the measurement holds only the core.
	reqs := make([][]byte, n)
	froms := make([]netip.AddrPort, n)
	for i := range n {
		froms[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 40000)
		m := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udpTransport)
		core.HandleClient(m.Raw, froms[i], listen, now, &out)
		res := new(stun.Message)
		if err := stun.Decode(out.Transmits[0].Payload, res); err != nil {
			b.Fatal(err)
		}
		out.Reset()
		var nonce stun.Nonce
		var realm stun.Realm
		nonce.GetFrom(res)
		realm.GetFrom(res)
		user := stun.NewUsername(testUser)
		m = stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udpTransport,
			user, realm, nonce, stun.NewLongTermIntegrity(testUser, realm.String(), testPass), stun.Fingerprint)
		reqs[i] = m.Raw
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		core.HandleClient(reqs[i], froms[i], listen, now, &out)
		out.Reset()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if st := core.Stats(); st.Allocations != n {
		b.Fatalf("%d allocations, want %d (responses %v)", st.Allocations, n, st.Responses)
	}
	runtime.KeepAlive(core)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// TestRelayedPathDoesNotAllocate holds the whole relayed path, receive to
// send through the relay's sockets, to zero allocations per datagram.
// AllocsPerRun counts every goroutine's allocations, so the relay's
// workers are measured along with the (allocation-free) client and peer.
func TestRelayedPathDoesNotAllocate(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation changes allocation counts")
	}
	r := loopbackRelay(t, Options{})
	pc := udpConn(t, nil, netip.AddrPortFrom(lo4, 0))
	go echo(pc)
	peer := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	rc := newRawClient(t, udpConn(t, nil, netip.AddrPortFrom(lo4, 0)), r.listen[0], testUser, testPass)
	rc.allocate()
	mustSucceed(t, rc.do(stun.MethodChannelBind, peerAttr(peer), channelNumber(0x4000)))
	pc2 := udpConn(t, nil, netip.AddrPortFrom(lo4, 0))
	go echo(pc2)
	other := pc2.LocalAddr().(*net.UDPAddr).AddrPort()

	buf := make([]byte, 2048)
	for _, tc := range []struct {
		name string
		pkt  []byte
	}{
		{"ChannelData", channelData(0x4000, make([]byte, benchPayload))},
		{"Send and Data", stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication), peerAttr(other), dataAttr(make([]byte, benchPayload))).Raw},
	} {
		rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		roundTrip := func() {
			if _, err := rc.c.WriteToUDPAddrPort(tc.pkt, rc.server); err != nil {
				t.Fatal(err)
			}
			if _, _, err := rc.c.ReadFromUDPAddrPort(buf); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		for range 10 {
			roundTrip() // warm up: outputs and batches at their working size
		}
		if n := testing.AllocsPerRun(200, roundTrip); n != 0 {
			t.Errorf("%s round trip through the relay: %v allocations, want 0", tc.name, n)
		}
	}
}
