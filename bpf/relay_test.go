//go:build linux

package bpf

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// The bindings of the Program.Run tests, in the relay network of
// relaynet_test.go.
var (
	b44 = Binding{Client: ap(client4, 40000), Server: ap(relay4, 3478), Channel: 0x4000, Relay: ap(relay4, 50000), Peer: ap(peer4, 7)}
	b66 = Binding{Client: ap(client6, 40000), Server: ap(relay6, 3478), Channel: 0x4001, Relay: ap(relay6, 50001), Peer: ap(peer6, 7)}
	b46 = Binding{Client: ap(client4, 40001), Server: ap(relay4, 3478), Channel: 0x4002, Relay: ap(relay6, 50002), Peer: ap(peer6, 8)}
	b64 = Binding{Client: ap(client6, 40001), Server: ap(relay6, 3478), Channel: 0x7FFF, Relay: ap(relay4, 50003), Peer: ap(peer4, 8)}
	// Both ends clients of the relay: A (IPv4) and B (IPv6), IPv4
	// allocations, each the other's peer.
	bA = Binding{Client: ap(client4, 40002), Server: ap(relay4, 3478), Channel: 0x4003, Relay: ap(relay4, 50004), Peer: ap(relay4, 50005)}
	bB = Binding{Client: ap(client6, 40002), Server: ap(relay6, 3478), Channel: 0x4004, Relay: ap(relay4, 50005), Peer: ap(relay4, 50004)}
	// A peer that is an allocation of the relay without a channel back.
	bLonely     = Binding{Client: ap(client4, 40003), Server: ap(relay4, 3478), Channel: 0x4005, Relay: ap(relay4, 50006), Peer: ap(relay4, 50007)}
	bNoNeigh4   = Binding{Client: ap(client4, 40004), Server: ap(relay4, 3478), Channel: 0x4006, Relay: ap(relay4, 50008), Peer: ap(unresolved4, 9)}
	bNoNeigh6   = Binding{Client: ap(client6, 40004), Server: ap(relay6, 3478), Channel: 0x4006, Relay: ap(relay6, 50008), Peer: ap(unresolved6, 9)}
	bGateway    = Binding{Client: ap(client6, 40005), Server: ap(relay6, 3478), Channel: 0x4007, Relay: ap(relay6, 50009), Peer: ap(viaGateway6, 9)}
	bR2         = Binding{Client: ap(client4, 40006), Server: ap(relay4, 3478), Channel: 0x4008, Relay: ap(relay4, 50010), Peer: ap(behindR2v4, 9)}
	bBlackhole  = Binding{Client: ap(client4, 40007), Server: ap(relay4, 3478), Channel: 0x4009, Relay: ap(relay4, 50011), Peer: ap(blackholed4, 9)}
	bUnrouted   = Binding{Client: ap(client6, 40008), Server: ap(relay6, 3478), Channel: 0x400A, Relay: ap(relay6, 50012), Peer: ap(unrouted6, 9)}
	bSecondAddr = Binding{Client: ap(client4, 40009), Server: ap(secondRelay4, 3478), Channel: 0x4000, Relay: ap(secondRelay4, 50000), Peer: ap(peer4, 9)}

	tableBindings = []Binding{b44, b66, b46, b64, bA, bB, bLonely, bNoNeigh4, bNoNeigh6, bGateway, bR2, bBlackhole, bUnrouted, bSecondAddr}
)

// fromClient is b's client sending data as ChannelData, with extra bytes
// (padding) after it.
func fromClient(b Binding, data []byte, extra ...byte) packet {
	return packet{src: b.Client, dst: b.Server, payload: append(channelData(b.Channel, data), extra...)}
}

// fromPeer is b's peer sending data to the allocation.
func fromPeer(b Binding, data []byte) packet {
	return packet{src: b.Peer, dst: b.Relay, payload: data, srcMAC: peerMAC, dstMAC: r1MAC}
}

// sent is a datagram as the relay sends it, to a destination of the relay
// network.
func sent(src, dst netip.AddrPort, payload []byte) packet {
	p := packet{src: src, dst: dst, payload: payload, df: true, unpadded: true}
	switch a := dst.Addr(); {
	case a == client4 || a == client6:
		p.srcMAC, p.dstMAC = r0MAC, clientMAC
	case a == behindR2v4 || a == behindR2v6:
		p.srcMAC, p.dstMAC = r2MAC, peerMAC
	default:
		p.srcMAC, p.dstMAC = r1MAC, peerMAC
	}
	return p
}

func toPeer(b Binding, data []byte) packet { return sent(b.Relay, b.Peer, data) }
func toClient(b Binding, data []byte) packet {
	return sent(b.Server, b.Client, channelData(b.Channel, data))
}

// Offsets in an untagged IPv4 frame without options, and IPv6.
const (
	ip4Off  = 14
	udp4Off = 34
	ip6Off  = 14
	udp6Off = 54
)

func put16(off int, v uint16) func([]byte) {
	return func(b []byte) { binary.BigEndian.PutUint16(b[off:], v) }
}

func flip(off int) func([]byte) { return func(b []byte) { b[off] ^= 0xFF } }

// relayCase is a packet the program is given, and what it must do with it.
type relayCase struct {
	name    string
	in      packet
	mutate  func([]byte) // applied to the built frame
	ingress string       // "r0" unless set
	want    Reason
	out     *packet // the frame sent, when relayed
}

// input builds the frame of tc and names the NIC it arrives on.
func (tc relayCase) input(t testing.TB) (frame []byte, ingress string) {
	t.Helper()
	frame = tc.in.build(t)
	if tc.mutate != nil {
		tc.mutate(frame)
	}
	if tc.ingress == "" {
		return frame, "r0"
	}
	return frame, tc.ingress
}

// relayCases are the table of TestRelay: every path and every reason.
var relayCases = []relayCase{
	// The eight paths: two directions, four family pairs.
	{name: "v4 client to v4 peer", in: fromClient(b44, []byte("hello peer")), want: ReasonRedirect, out: ptr(toPeer(b44, []byte("hello peer")))},
	{name: "v4 peer to v4 client", in: fromPeer(b44, []byte("hello client")), ingress: "r1", want: ReasonRedirect, out: ptr(toClient(b44, []byte("hello client")))},
	{name: "v6 client to v6 peer", in: fromClient(b66, []byte("hello peer")), want: ReasonRedirect, out: ptr(toPeer(b66, []byte("hello peer")))},
	{name: "v6 peer to v6 client", in: fromPeer(b66, []byte("hello client")), ingress: "r1", want: ReasonRedirect, out: ptr(toClient(b66, []byte("hello client")))},
	{name: "v4 client to v6 peer", in: fromClient(b46, []byte("hello peer")), want: ReasonRedirect, out: ptr(toPeer(b46, []byte("hello peer")))},
	{name: "v6 peer to v4 client", in: fromPeer(b46, []byte("hello client")), ingress: "r1", want: ReasonRedirect, out: ptr(toClient(b46, []byte("hello client")))},
	{name: "v6 client to v4 peer", in: fromClient(b64, []byte("hello peer")), want: ReasonRedirect, out: ptr(toPeer(b64, []byte("hello peer")))},
	{name: "v4 peer to v6 client", in: fromPeer(b64, []byte("hello client")), ingress: "r1", want: ReasonRedirect, out: ptr(toClient(b64, []byte("hello client")))},

	// Out the NIC it came in by: one NIC for clients and peers.
	{name: "tx client to peer", in: fromClient(b44, []byte("one nic")), ingress: "r1", want: ReasonTX, out: ptr(toPeer(b44, []byte("one nic")))},
	{name: "tx peer to client", in: fromPeer(b66, []byte("one nic")), ingress: "r0", want: ReasonTX, out: ptr(toClient(b66, []byte("one nic")))},

	// Both ends clients of this relay: relayed twice in one pass.
	{name: "client to client v4 to v6", in: fromClient(bA, []byte("hi B")), want: ReasonTX, out: ptr(toClient(bB, []byte("hi B")))},
	{name: "client to client v6 to v4", in: fromClient(bB, []byte("hi A, odd")), want: ReasonTX, out: ptr(toClient(bA, []byte("hi A, odd")))},
	{name: "client to client padded", in: fromClient(bA, []byte("odd"), 0xAA), want: ReasonTX, out: ptr(toClient(bB, []byte("odd")))},
	{name: "client to allocation without channel", in: fromClient(bLonely, []byte("x")), want: ReasonNoBinding},

	// What the rewrite must get right.
	{name: "padding 1 odd data", in: fromClient(b44, []byte("abc"), 0xA5), want: ReasonRedirect, out: ptr(toPeer(b44, []byte("abc")))},
	{name: "padding 2", in: fromClient(b66, []byte("ab"), 0xA5, 0x5A), want: ReasonRedirect, out: ptr(toPeer(b66, []byte("ab")))},
	{name: "padding 3 odd data", in: fromClient(b64, []byte("a"), 0xFF, 0xEE, 0xDD), want: ReasonRedirect, out: ptr(toPeer(b64, []byte("a")))},
	{name: "empty channel data", in: fromClient(b46, nil), want: ReasonRedirect, out: ptr(toPeer(b46, nil))},
	{name: "empty peer datagram", in: fromPeer(b64, nil), ingress: "r1", want: ReasonRedirect, out: ptr(toClient(b64, nil))},
	{name: "ethernet trailer cut", in: withTrailer(fromPeer(b44, []byte("data")), 0xDE, 0xAD, 0xBE, 0xEF), ingress: "r1", want: ReasonRedirect, out: ptr(toClient(b44, []byte("data")))},
	{name: "v4 without checksum stays without", in: noChecksum(fromClient(b44, []byte("no sum"))), want: ReasonRedirect, out: ptr(noChecksum(toPeer(b44, []byte("no sum"))))},
	{name: "via gateway", in: fromClient(bGateway, []byte("far")), want: ReasonRedirect, out: ptr(toPeer(bGateway, []byte("far")))},
	{name: "second relay address", in: fromClient(bSecondAddr, []byte("multi")), want: ReasonRedirect, out: ptr(toPeer(bSecondAddr, []byte("multi")))},
	{name: "largest datagram within the MTU", in: fromClient(b44, make([]byte, 1400-28)), want: ReasonRedirect, out: ptr(toPeer(b44, make([]byte, 1400-28)))},

	// Dropped, as user space drops it.
	{name: "channel data longer than datagram", in: fromClient(b44, []byte("short")), mutate: put16(udp4Off+8+2, 6), want: ReasonChannelLength},

	// Passed untouched.
	{name: "padding 4", in: fromClient(b44, []byte("abcd"), 0, 0, 0, 0), want: ReasonChannelPadding},
	{name: "unknown channel", in: fromClient(Binding{Client: b44.Client, Server: b44.Server, Channel: 0x4FFF}, []byte("x")), want: ReasonNoBinding},
	{name: "unknown peer port", in: packet{src: ap(peer4, 8), dst: b44.Relay, payload: []byte("x")}, ingress: "r1", want: ReasonNoBinding},
	{name: "channel data to other relay address", in: packet{src: b44.Client, dst: ap(secondRelay4, 3478), payload: channelData(b44.Channel, []byte("x"))}, want: ReasonNoBinding},
	{name: "v6 packet with mapped v4 addresses", in: packet{src: ap(netip.AddrFrom16(client4.As16()), 40000), dst: ap(netip.AddrFrom16(relay4.As16()), 3478), payload: channelData(0x4000, []byte("x"))}, want: ReasonNoBinding},
	{name: "stun", in: packet{src: b44.Client, dst: b44.Server, payload: stunMessage(0x0001, 0)}, want: ReasonControl},
	{name: "other to listen port", in: packet{src: b44.Client, dst: b44.Server, payload: []byte{0x80, 0, 0, 0}}, want: ReasonControl},
	{name: "other port", in: packet{src: b44.Client, dst: ap(relay4, 53), payload: []byte("x")}, want: ReasonOtherPort},
	{name: "tcp", in: packet{src: b44.Client, dst: b44.Server, tcp: true}, want: ReasonNotUDP},
	{name: "arp", in: fromClient(b44, nil), mutate: put16(12, 0x0806), want: ReasonNotIP},
	{name: "double tagged", in: packet{src: b44.Client, dst: b44.Server, vlan: []uint16{7, 42}, payload: channelData(0x4000, []byte("x"))}, want: ReasonNotIP},
	{name: "vlan tagged", in: packet{src: b44.Client, dst: b44.Server, vlan: []uint16{42}, payload: channelData(0x4000, []byte("x"))}, want: ReasonVLAN},
	{name: "ipv4 options", in: packet{src: b44.Client, dst: b44.Server, ipv4Options: true, payload: channelData(0x4000, []byte("x"))}, want: ReasonIPOptions},
	{name: "ipv4 first fragment", in: packet{src: b44.Client, dst: b44.Server, moreFragments: true, payload: channelData(0x4000, []byte("x"))}, want: ReasonFragment},
	{name: "ipv4 later fragment", in: packet{src: b44.Client, dst: b44.Server, fragOffset: 100, payload: channelData(0x4000, []byte("x"))}, want: ReasonFragment},
	{name: "ipv6 extension header", in: packet{src: b66.Client, dst: b66.Server, hopByHop: true, payload: channelData(0x4001, []byte("x"))}, want: ReasonIPv6Ext},
	{name: "v4 zero checksum leaving as v6", in: noChecksum(fromClient(b46, []byte("x"))), want: ReasonCsumZero},
	{name: "v6 zero checksum", in: noChecksum(fromClient(b66, []byte("x"))), want: ReasonCsumZero},
	{name: "unresolved neighbour v4", in: fromClient(bNoNeigh4, []byte("x")), want: ReasonNoNeigh},
	{name: "unresolved neighbour v6", in: fromClient(bNoNeigh6, []byte("x")), want: ReasonNoNeigh},
	{name: "larger than egress mtu", in: fromClient(b44, make([]byte, 1400-28+1)), want: ReasonMTU},
	{name: "larger than egress mtu v6", in: fromPeer(b66, make([]byte, 1500-40-8-4+1)), ingress: "r1", want: ReasonMTU},
	{name: "egress not a redirect target", in: fromClient(bR2, []byte("x")), want: ReasonNoTXPort},
	{name: "blackholed", in: fromClient(bBlackhole, []byte("x")), want: ReasonUnroutable},
	{name: "no route", in: fromClient(bUnrouted, []byte("x")), want: ReasonUnroutable},
	{name: "bad ipv4 header checksum", in: fromClient(b44, []byte("x")), mutate: flip(ip4Off + 10), want: ReasonMalformed},
	{name: "ipv4 version 5", in: fromClient(b44, []byte("x")), mutate: func(b []byte) { b[ip4Off] = 0x55 }, want: ReasonMalformed},
	{name: "ipv4 total length below udp", in: fromClient(b44, []byte("xyz")), mutate: put16(ip4Off+2, 20+8+4), want: ReasonMalformed},
	{name: "ipv4 total length beyond frame", in: fromClient(b44, []byte("xyz")), mutate: put16(ip4Off+2, 200), want: ReasonMalformed},
	{name: "ipv6 payload length below udp", in: fromClient(b66, []byte("xyz")), mutate: put16(ip6Off+4, 8), want: ReasonMalformed},
	{name: "ipv6 jumbo payload length", in: fromClient(b66, []byte("xyz")), mutate: put16(ip6Off+4, 0), want: ReasonMalformed},
	{name: "ipv6 version 4", in: fromClient(b66, []byte("x")), mutate: func(b []byte) { b[ip6Off] = 0x40 }, want: ReasonMalformed},
	{name: "udp length beyond frame", in: fromClient(b44, []byte("xyz")), mutate: put16(udp4Off+4, 100), want: ReasonMalformed},
	{name: "udp length below header", in: fromClient(b44, []byte("xyz")), mutate: put16(udp4Off+4, 7), want: ReasonMalformed},
	{name: "truncated ipv4 header", in: truncated(fromClient(b44, nil), 24), want: ReasonMalformed},
	{name: "truncated ipv6 header", in: truncated(fromClient(b66, nil), 14+39), want: ReasonMalformed},
	{name: "truncated udp header", in: truncated(fromClient(b66, nil), 14+40+7), want: ReasonMalformed},
	{name: "ethernet header only", in: truncated(fromClient(b66, nil), 14), want: ReasonMalformed},
}

func ptr[T any](v T) *T { return &v }

func withTrailer(p packet, b ...byte) packet { p.trailer = b; return p }
func noChecksum(p packet) packet             { p.zeroChecksum = true; return p }

// truncated is p cut to n bytes (p must be unpadded or at least 60 long).
func truncated(p packet, n int) packet {
	p.unpadded = true
	l := 14 + 8 + len(p.payload) + 20
	if p.dst.Addr().Is6() {
		l += 20
	}
	p.truncate = l - n
	return p
}

func TestRelay(t *testing.T) {
	n := newRelayNet(t, Config{}, tableBindings...)
	for _, tc := range relayCases {
		t.Run(tc.name, func(t *testing.T) {
			in, ingress := tc.input(t)
			want := in
			if tc.out != nil {
				want = tc.out.build(t)
			}
			if (tc.out != nil) != (tc.want.Verdict() == VerdictTX || tc.want.Verdict() == VerdictRedirect) {
				t.Fatalf("bad case: out given for %s", tc.want)
			}

			before := readReasons(t, n.p)
			verdict, out := n.run(t, in, ingress)
			after := readReasons(t, n.p)

			if verdict != tc.want.Verdict() {
				t.Errorf("relay_xdp(%s) verdict = %s, want %s", tc.name, verdict, tc.want.Verdict())
			}
			if diff := cmp.Diff(want, out); diff != "" {
				t.Errorf("relay_xdp(%s) frame (-want +got):\n%s\nwant % x\n got % x", tc.name, diff, want, out)
			}
			wantReasons := map[Reason]Counter{tc.want: {1, uint64(len(in))}}
			if diff := cmp.Diff(wantReasons, delta(before, after)); diff != "" {
				t.Errorf("relay_xdp(%s) reason counter deltas (-want +got):\n%s", tc.name, diff)
			}

			// The reference agrees with the same expectations.
			ref := reference(n.env(ingress, tableBindings), in)
			if ref.reason != tc.want || !bytes.Equal(ref.out, want) {
				t.Errorf("reference(%s) = %s, % x; want %s, % x", tc.name, ref.reason, ref.out, tc.want, want)
			}
			if tc.out != nil && !checksumsValid(t, out) && !tc.in.zeroChecksum {
				t.Errorf("relay_xdp(%s) sent a frame with a wrong checksum: % x", tc.name, out)
			}
		})
	}
}

// checksumsValid reports whether the IPv4 header checksum (if any) and the
// UDP checksum of frame are right: gopacket, serializing the same headers
// and payload with checksums computed, produces the same bytes.
func checksumsValid(t testing.TB, frame []byte) bool {
	t.Helper()
	p := parseFrame(t, frame)
	var ip gopacket.SerializableLayer = p.ip6
	if p.ip4 != nil {
		ip = p.ip4
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ip, p.udp, gopacket.Payload(p.udp.Payload)); err != nil {
		t.Fatalf("serialize %x: %v", frame, err)
	}
	want := buf.Bytes()
	// gopacket leaves a computed 0 as it is; UDP sends it as 0xFFFF, 0
	// meaning "no checksum" (RFC 768).
	if sum := want[len(want)-len(p.udp.Payload)-2:]; sum[0] == 0 && sum[1] == 0 {
		sum[0], sum[1] = 0xFF, 0xFF
	}
	return bytes.Equal(want, frame[14:])
}

// TestRelayFwdDisabled: with forwarding off on the ingress NIC the FIB
// refuses every lookup, and the relay says so.
func TestRelayFwdDisabled(t *testing.T) {
	n := newRelayNet(t, Config{}, b44)
	n.setForwarding(t, false)
	in := fromClient(b44, []byte("x")).build(t)
	before := readReasons(t, n.p)
	verdict, out := n.run(t, in, "r0")
	if verdict != VerdictPass || !bytes.Equal(out, in) {
		t.Errorf("relay_xdp with forwarding off = %s, % x; want pass, untouched", verdict, out)
	}
	if diff := cmp.Diff(map[Reason]Counter{ReasonFwdDisabled: {1, uint64(len(in))}}, delta(before, readReasons(t, n.p))); diff != "" {
		t.Errorf("reason counter deltas (-want +got):\n%s", diff)
	}
	env := n.env("r0", []Binding{b44})
	env.fib = n.model(false).lookup
	if ref := reference(env, in); ref.reason != ReasonFwdDisabled {
		t.Errorf("reference with forwarding off = %s, want %s", ref.reason, ReasonFwdDisabled)
	}
}

// TestBindingTraffic checks the per-binding counters: data bytes, packets
// and last-seen of each direction, both bindings of a client-to-client
// datagram, and nothing for what was not relayed.
func TestBindingTraffic(t *testing.T) {
	n := newRelayNet(t, Config{}, b44, b66, bA, bB, bNoNeigh4)
	start := time.Now()
	for range 3 {
		n.run(t, fromClient(b44, []byte("12345"), 0, 0, 0).build(t), "r0")
	}
	n.run(t, fromPeer(b44, []byte("1234567")).build(t), "r1")
	n.run(t, fromClient(bA, []byte("12")).build(t), "r0")
	n.run(t, fromClient(bNoNeigh4, []byte("lost")).build(t), "r0")

	got, err := n.p.Bindings()
	if err != nil {
		t.Fatal(err)
	}
	type traffic struct{ Packets, Bytes uint64 }
	want := map[Binding][2]*traffic{ // to peer, to client
		b44:       {{3, 15}, {1, 7}},
		b66:       {{0, 0}, {0, 0}},
		bA:        {{1, 2}, {0, 0}},
		bB:        {{0, 0}, {1, 2}},
		bNoNeigh4: {{0, 0}, {0, 0}},
	}
	if len(got) != len(want) {
		t.Fatalf("Bindings() = %d bindings, want %d: %+v", len(got), len(want), got)
	}
	for _, s := range got {
		w, ok := want[s.Binding]
		if !ok {
			t.Errorf("Bindings() has unexpected %s", s.Binding)
			continue
		}
		for i, tr := range []*Traffic{s.ToPeer, s.ToClient} {
			if tr == nil {
				t.Errorf("%s: direction %d missing", s.Binding, i)
				continue
			}
			if g := (traffic{tr.Packets, tr.Bytes}); g != *w[i] {
				t.Errorf("%s direction %d: traffic %+v, want %+v", s.Binding, i, g, *w[i])
			}
			switch {
			case tr.Packets == 0 && !tr.LastSeen.IsZero():
				t.Errorf("%s direction %d: LastSeen %v without traffic", s.Binding, i, tr.LastSeen)
			case tr.Packets > 0 && (tr.LastSeen.Before(start.Add(-time.Second)) || tr.LastSeen.After(time.Now().Add(time.Second))):
				t.Errorf("%s direction %d: LastSeen %v, want about %v", s.Binding, i, tr.LastSeen, start)
			}
		}
	}

	// Removing a binding hands over its final counts, once.
	for try, want := range [][2]*traffic{{{3, 15}, {1, 7}}, {nil, nil}} {
		s, err := n.p.Maps().RemoveBindingStats(b44)
		if err != nil {
			t.Fatalf("RemoveBindingStats(%s) #%d = %v", b44, try, err)
		}
		for i, tr := range []*Traffic{s.ToPeer, s.ToClient} {
			switch {
			case (tr == nil) != (want[i] == nil):
				t.Errorf("RemoveBindingStats(%s) #%d direction %d = %+v, want %+v", b44, try, i, tr, want[i])
			case tr != nil && (traffic{tr.Packets, tr.Bytes} != *want[i] || tr.LastSeen.IsZero()):
				t.Errorf("RemoveBindingStats(%s) #%d direction %d = %+v, want %+v and a last-seen time", b44, try, i, *tr, *want[i])
			}
		}
	}
	if got := bindingList(t, n.p); len(got) != len(want)-1 {
		t.Errorf("after RemoveBindingStats, Bindings() = %v, want the %d others", got, len(want)-1)
	}
}

// parsed is a frame decoded by gopacket.
type parsed struct {
	ip4 *layers.IPv4
	ip6 *layers.IPv6
	udp *layers.UDP
}

func parseFrame(t testing.TB, frame []byte) parsed {
	t.Helper()
	var eth layers.Ethernet
	var p parsed
	if err := eth.DecodeFromBytes(frame, nopFeedback{}); err != nil {
		t.Fatalf("decode ethernet: %v", err)
	}
	var l4 []byte
	switch eth.EthernetType {
	case layers.EthernetTypeIPv4:
		p.ip4 = &layers.IPv4{}
		if err := p.ip4.DecodeFromBytes(eth.Payload, nopFeedback{}); err != nil {
			t.Fatalf("decode ipv4: %v", err)
		}
		l4 = p.ip4.Payload
	case layers.EthernetTypeIPv6:
		p.ip6 = &layers.IPv6{}
		if err := p.ip6.DecodeFromBytes(eth.Payload, nopFeedback{}); err != nil {
			t.Fatalf("decode ipv6: %v", err)
		}
		l4 = p.ip6.Payload
	default:
		t.Fatalf("frame is %s, want IP", eth.EthernetType)
	}
	p.udp = &layers.UDP{}
	if err := p.udp.DecodeFromBytes(l4, nopFeedback{}); err != nil {
		t.Fatalf("decode udp: %v", err)
	}
	var err error
	if p.ip4 != nil {
		err = p.udp.SetNetworkLayerForChecksum(p.ip4)
	} else {
		err = p.udp.SetNetworkLayerForChecksum(p.ip6)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type nopFeedback struct{}

func (nopFeedback) SetTruncated() {}

// TestRelayChecksumFFFF: a datagram whose checksum computes to 0 leaves
// with 0xFFFF, since 0 would mean "no checksum" (RFC 768).
func TestRelayChecksumFFFF(t *testing.T) {
	n := newRelayNet(t, Config{}, b44)
	// Two data bytes chosen so that the datagram to the peer sums to
	// 0xFFFF without its checksum.
	udp := []byte{0, 0, 0, 0, 0, 10, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(udp[0:], b44.Relay.Port())
	binary.BigEndian.PutUint16(udp[2:], b44.Peer.Port())
	data := binary.BigEndian.AppendUint16(nil, ^onesSum(pseudoHeader(b44.Relay.Addr(), b44.Peer.Addr(), len(udp)), udp))

	in := fromClient(b44, data).build(t)
	want := toPeer(b44, data).build(t)
	const sumOff = 14 + 20 + 6
	if want[sumOff] != 0 || want[sumOff+1] != 0 {
		t.Fatalf("test data: expected frame has checksum %x, want gopacket's 0", want[sumOff:sumOff+2])
	}
	want[sumOff], want[sumOff+1] = 0xFF, 0xFF

	verdict, out := n.run(t, in, "r0")
	if verdict != VerdictRedirect || !bytes.Equal(out, want) {
		t.Errorf("relay_xdp = %s, % x; want redirect, % x", verdict, out, want)
	}
	if ref := reference(n.env("r0", []Binding{b44}), in); !bytes.Equal(ref.out, want) {
		t.Errorf("reference = % x, want % x", ref.out, want)
	}
}
