package proto

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/pion/stun/v3"
)

// hotPath is a Server with one allocation, a channel 0x4000 to peer1 and a
// permission for peer2, ready for datagrams.
func hotPath(tb testing.TB) (h *harness, relayed netip.AddrPort) {
	h = newHarness(tb, nil)
	c := h.alice()
	relayed = c.mustAllocate()[0]
	c.bind(0x4000, peer1)
	c.permit(peer2)
	return h, relayed
}

const payloadSize = 1200 // a typical WebRTC media datagram

func channelDataPacket() []byte {
	pkt := binary.BigEndian.AppendUint16(nil, 0x4000)
	pkt = binary.BigEndian.AppendUint16(pkt, payloadSize)
	return append(pkt, make([]byte, payloadSize)...)
}

func sendPacket(tb testing.TB) []byte {
	m, err := stun.Build(stun.NewType(stun.MethodSend, stun.ClassIndication), stun.TransactionID, peerAddr(peer2), rawAttr(stun.AttrData, make([]byte, payloadSize)))
	if err != nil {
		tb.Fatal(err)
	}
	return m.Raw
}

// TestHotPathsDoNotAllocate guards the user-space data path: relaying a
// datagram either way allocates nothing once the Output has grown.
func TestHotPathsDoNotAllocate(t *testing.T) {
	h, relayed := hotPath(t)
	cd, send, data := channelDataPacket(), sendPacket(t), make([]byte, payloadSize)
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"ChannelData to peer", func() { h.s.HandleClient(cd, client1, listen4, h.now, &h.out) }},
		{"Send to peer", func() { h.s.HandleClient(send, client1, listen4, h.now, &h.out) }},
		{"peer to ChannelData", func() { h.s.HandlePeer(data, peer1, relayed, h.now, &h.out) }},
		{"peer to Data", func() { h.s.HandlePeer(data, peer2, relayed, h.now, &h.out) }},
	} {
		f := func() {
			tc.f()
			if len(h.out.Transmits) != 1 {
				t.Fatalf("%s: %d transmits, want 1", tc.name, len(h.out.Transmits))
			}
			h.out.Reset()
		}
		f() // grow the Output
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per datagram, want 0", tc.name, n)
		}
	}
}

func benchHot(b *testing.B, f func(h *harness, relayed netip.AddrPort)) {
	h, relayed := hotPath(b)
	b.SetBytes(payloadSize)
	b.ReportAllocs()
	for b.Loop() {
		f(h, relayed)
		h.out.Reset()
	}
}

func BenchmarkChannelDataToPeer(b *testing.B) {
	pkt := channelDataPacket()
	benchHot(b, func(h *harness, _ netip.AddrPort) { h.s.HandleClient(pkt, client1, listen4, h.now, &h.out) })
}

func BenchmarkPeerToChannelData(b *testing.B) {
	data := make([]byte, payloadSize)
	benchHot(b, func(h *harness, relayed netip.AddrPort) { h.s.HandlePeer(data, peer1, relayed, h.now, &h.out) })
}

func BenchmarkSendToPeer(b *testing.B) {
	pkt := sendPacket(b)
	benchHot(b, func(h *harness, _ netip.AddrPort) { h.s.HandleClient(pkt, client1, listen4, h.now, &h.out) })
}

func BenchmarkPeerToDataIndication(b *testing.B) {
	data := make([]byte, payloadSize)
	benchHot(b, func(h *harness, relayed netip.AddrPort) { h.s.HandlePeer(data, peer2, relayed, h.now, &h.out) })
}

// BenchmarkAllocate measures an authenticated Allocate and the Refresh that
// deletes it, from 1024 client addresses in turn, each with its own nonce:
// the control-plane cost of an allocation's life.
func BenchmarkAllocate(b *testing.B) {
	h := newHarness(b, func(c *Config) { c.PortMin, c.PortMax = 4000, 65535; c.Listen = []netip.AddrPort{listen4} })
	type pair struct {
		from              netip.AddrPort
		allocate, refresh []byte
	}
	pairs := make([]pair, 1024)
	for i := range pairs {
		c := h.client(netip.AddrPortFrom(client1.Addr(), uint16(20000+i)), "alice", "secret")
		c.nonce = string(h.s.nonces.Append(nil, c.addr, h.now))
		c.newTxn()
		alloc := c.build(stun.MethodAllocate, transport(protoUDP))
		c.newTxn()
		pairs[i] = pair{c.addr, alloc, c.build(stun.MethodRefresh, lifetime(0))}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := pairs[i%len(pairs)]
		h.s.HandleClient(p.allocate, p.from, listen4, h.now, &h.out)
		h.s.HandleClient(p.refresh, p.from, listen4, h.now, &h.out)
		if len(h.out.Transmits) != 2 {
			b.Fatalf("%d answers, want 2", len(h.out.Transmits))
		}
		h.out.Reset()
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "allocations/s")
}
