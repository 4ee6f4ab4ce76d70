//go:build linux

package bpf

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
)

// The next-hop cache (struct next_hop in maps.h): each binding keeps its
// last FIB answer, success or failure, for Config.NextHopTTL. These tests change the
// relay network under a cached next hop and check when the program sees
// it.

// cacheTTL is the tests' NextHopTTL: long enough that a few runs and an
// `ip` command fit in it, short enough to wait out.
const cacheTTL = 400 * time.Millisecond

// newCachedRelayNet is newRelayNet with NextHopTTL ttl and bindings bs.
func newCachedRelayNet(t *testing.T, ttl time.Duration, bs ...Binding) *relayNet {
	t.Helper()
	cfg := testConfig
	cfg.NextHopTTL = ttl
	return newRelayNet(t, cfg, bs...)
}

// hopOf reads the next hop cached in one direction of b.
func hopOf(t *testing.T, n *relayNet, b Binding, toPeer bool) relayNextHop {
	t.Helper()
	b, err := b.normalize()
	if err != nil {
		t.Fatal(err)
	}
	e, toClient := b.entries()
	if !toPeer {
		e = toClient
	}
	var v relayBindingValue
	if err := n.p.maps.bindings.Lookup(&e.key, &v); err != nil {
		t.Fatalf("look up %s (to peer %v): %v", b, toPeer, err)
	}
	return v.Hop
}

// expect runs frame in on ingress and checks the verdict and, when
// relayed, the frame sent.
func (n *relayNet) expect(t *testing.T, what string, in []byte, ingress string, want Reason, out []byte) {
	t.Helper()
	if out == nil {
		out = in
	}
	verdict, got := n.run(t, in, ingress)
	if verdict != want.Verdict() || !bytes.Equal(got, out) {
		t.Errorf("%s: relay_xdp = %s, % x; want %s (%s), % x", what, verdict, got, want.Verdict(), want, out)
	}
}

// withDstMAC returns frame with its destination MAC set to mac.
func withDstMAC(frame []byte, mac net.HardwareAddr) []byte {
	f := bytes.Clone(frame)
	copy(f, mac)
	return f
}

// waitOut sleeps until ttl has passed since start, and a tick more (the
// program's clock is coarse).
func waitOut(start time.Time, ttl time.Duration) {
	time.Sleep(time.Until(start.Add(ttl + 20*time.Millisecond)))
}

// TestNextHopFilled: a relayed datagram leaves its FIB answer in the
// binding's value, for the ingress NIC, with the egress MTU; user space
// writes an empty one.
func TestNextHopFilled(t *testing.T) {
	n := newCachedRelayNet(t, cacheTTL, b44, b66)
	for _, tc := range []struct {
		b      Binding
		toPeer bool
	}{{b44, true}, {b44, false}, {b66, true}, {b66, false}} {
		if h := hopOf(t, n, tc.b, tc.toPeer); h != (relayNextHop{}) {
			t.Errorf("%s to peer %v: next hop %+v before any packet, want empty", tc.b, tc.toPeer, h)
		}
	}
	now, err := monotonicNow()
	if err != nil {
		t.Fatal(err)
	}
	n.expect(t, "v4 to peer", fromClient(b44, []byte("fill")).build(t), "r0", ReasonRedirect, toPeer(b44, []byte("fill")).build(t))
	n.expect(t, "v6 to client", fromPeer(b66, []byte("fill")).build(t), "r1", ReasonRedirect, toClient(b66, []byte("fill")).build(t))

	for _, tc := range []struct {
		b      Binding
		toPeer bool
		want   relayNextHop
	}{
		{b44, true, relayNextHop{IngressIfindex: uint32(n.ifindex["r0"]), Ifindex: uint32(n.ifindex["r1"]), Smac: [6]byte(r1MAC), Dmac: [6]byte(peerMAC), Mtu: 1400}},
		{b66, false, relayNextHop{IngressIfindex: uint32(n.ifindex["r1"]), Ifindex: uint32(n.ifindex["r0"]), Smac: [6]byte(r0MAC), Dmac: [6]byte(clientMAC), Mtu: 1500}},
	} {
		got := hopOf(t, n, tc.b, tc.toPeer)
		// The coarse clock may lag the monotonic one by a tick.
		if got.ExpiresNs < now+uint64(cacheTTL)-uint64(50*time.Millisecond) || got.ExpiresNs > now+uint64(cacheTTL+time.Second) {
			t.Errorf("%s: next hop expires at %d, want about %d (now %d + %s)", tc.b, got.ExpiresNs, now+uint64(cacheTTL), now, cacheTTL)
		}
		got.ExpiresNs = 0
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s to peer %v: cached next hop (-want +got):\n%s", tc.b, tc.toPeer, diff)
		}
	}
	// The directions that sent nothing stay empty.
	if h := hopOf(t, n, b44, false); h != (relayNextHop{}) {
		t.Errorf("%s to client: next hop %+v without a packet, want empty", b44, h)
	}
}

// TestNextHopExpiry: a neighbour or route change reaches the kernel path
// once the cached next hop expires, and not before: the new MAC, or the
// FIB's failure reason.
func TestNextHopExpiry(t *testing.T) {
	n := newCachedRelayNet(t, cacheTTL, b44, bGateway, b66)
	newMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x66}
	for _, tc := range []struct {
		name   string
		b      Binding
		change []string // an ip command in the relay namespace
		want   Reason   // after expiry
		newMAC bool     // relayed to newMAC after expiry
	}{
		{"neighbour moves", b44, []string{"neigh", "replace", peer4.String(), "lladdr", newMAC.String(), "dev", "r1", "nud", "permanent"}, ReasonRedirect, true},
		{"route blackholed", bGateway, []string{"-6", "route", "replace", "blackhole", "2001:2:0:80::/64"}, ReasonUnroutable, false},
		{"neighbour gone", b66, []string{"-6", "neigh", "del", peer6.String(), "dev", "r1"}, ReasonNoNeigh, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.name)
			in := fromClient(tc.b, data).build(t)
			before := toPeer(tc.b, data).build(t)

			start := time.Now()
			n.expect(t, "first datagram", in, "r0", ReasonRedirect, before)
			n.ns.MustRun(t, "ip", tc.change...)
			n.expect(t, "within the TTL", in, "r0", ReasonRedirect, before)
			if time.Since(start) >= cacheTTL {
				t.Fatalf("the change took %s, longer than the TTL (%s): cannot tell a cached next hop", time.Since(start), cacheTTL)
			}

			waitOut(start, cacheTTL)
			var after []byte
			if tc.newMAC {
				after = withDstMAC(before, newMAC)
			}
			n.expect(t, "after the TTL", in, "r0", tc.want, after)
		})
	}
}

// TestNextHopFailureCached: a failed lookup is cached too, for
// FailedNextHopTTL, so a binding whose peer has no neighbour yet costs one
// FIB lookup per expiry, not one per packet; the neighbour, once resolved,
// reaches the kernel path when the entry expires.
func TestNextHopFailureCached(t *testing.T) {
	n := newCachedRelayNet(t, cacheTTL, bNoNeigh4)
	data := []byte("no neighbour yet")
	in := fromClient(bNoNeigh4, data).build(t)
	neigh := &netlink.Neigh{
		LinkIndex: n.ifindex["r1"], Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		IP: unresolved4.AsSlice(), HardwareAddr: peerMAC,
	}
	// The change is made in-process, well within the TTL; a stalled
	// machine that overran it tries again.
	for try := 1; ; try++ {
		start := time.Now()
		n.expect(t, "first datagram", in, "r0", ReasonNoNeigh, nil)
		h := hopOf(t, n, bNoNeigh4, true)
		if h.ExpiresNs == 0 || h.Rc != fibNoNeigh || h.IngressIfindex != uint32(n.ifindex["r0"]) {
			t.Fatalf("next hop %+v after no neighbour, want the failure cached for r0", h)
		}
		if err := n.ns.Do(func() error { return netlink.NeighSet(neigh) }); err != nil {
			t.Fatal(err)
		}
		n.expect(t, "neighbour resolved, within the TTL", in, "r0", ReasonNoNeigh, nil)
		if time.Since(start) < FailedNextHopTTL {
			break
		}
		if try == 3 {
			t.Fatalf("three tries each took longer than the TTL (%s): cannot tell a cached failure", FailedNextHopTTL)
		}
		if err := n.ns.Do(func() error { return netlink.NeighDel(neigh) }); err != nil {
			t.Fatal(err)
		}
		waitOut(start, FailedNextHopTTL)
	}
	waitOut(time.Now(), FailedNextHopTTL)
	n.expect(t, "after the TTL", in, "r0", ReasonRedirect, toPeer(bNoNeigh4, data).build(t))
	if h := hopOf(t, n, bNoNeigh4, true); h.Rc != fibSuccess || h.Dmac != [6]byte(peerMAC) {
		t.Errorf("next hop %+v after the neighbour resolved, want it cached", h)
	}
}

// TestNextHopMTU: a cached next hop checks each datagram against its MTU;
// one larger asks the FIB, which says REASON_MTU, or relays it at once if
// the MTU went up. A lower MTU applies when the entry expires.
func TestNextHopMTU(t *testing.T) {
	n := newCachedRelayNet(t, cacheTTL, b44)
	fits, big := make([]byte, 1400-28), make([]byte, 1400-28+1)
	start := time.Now()
	n.expect(t, "small datagram", fromClient(b44, []byte("fill")).build(t), "r0", ReasonRedirect, toPeer(b44, []byte("fill")).build(t))
	before := readReasons(t, n.p)
	n.expect(t, "datagram over the MTU", fromClient(b44, big).build(t), "r0", ReasonMTU, nil)
	if got := delta(before, readReasons(t, n.p)); got[ReasonMTU].Packets != 1 {
		t.Errorf("reason deltas %v, want one %s", got, ReasonMTU)
	}
	n.expect(t, "largest datagram within the MTU", fromClient(b44, fits).build(t), "r0", ReasonRedirect, toPeer(b44, fits).build(t))

	n.ns.MustRun(t, "ip", "link", "set", "r1", "mtu", "1500")
	n.expect(t, "over the cached MTU, under the new one", fromClient(b44, big).build(t), "r0", ReasonRedirect, toPeer(b44, big).build(t))
	n.ns.MustRun(t, "ip", "link", "set", "r1", "mtu", "1300")
	n.expect(t, "over the new MTU, cached", fromClient(b44, fits).build(t), "r0", ReasonRedirect, toPeer(b44, fits).build(t))
	if time.Since(start) >= cacheTTL {
		t.Fatalf("the steps took %s, longer than the TTL (%s): cannot tell a cached next hop", time.Since(start), cacheTTL)
	}
	waitOut(start, cacheTTL)
	n.expect(t, "over the new MTU, expired", fromClient(b44, fits).build(t), "r0", ReasonMTU, nil)
	if h := hopOf(t, n, b44, true); h.Mtu != 1400 {
		// The failed lookup leaves the expired entry as it was.
		t.Errorf("next hop MTU %d after a failed lookup, want the old entry's 1400", h.Mtu)
	}
	small := []byte("small")
	n.expect(t, "small datagram, refilled", fromClient(b44, small).build(t), "r0", ReasonRedirect, toPeer(b44, small).build(t))
	if h := hopOf(t, n, b44, true); h.Mtu != 1300 {
		t.Errorf("next hop MTU %d after the refill, want 1300", h.Mtu)
	}
}

// TestNextHopRewrite: user space rewriting a binding's entry (AddBinding
// over a stale one) empties its next hop, so the new rewrite is routed
// afresh at once. Adding the same binding again writes nothing and keeps
// it: the next hop depends on the rewrite only.
func TestNextHopRewrite(t *testing.T) {
	n := newCachedRelayNet(t, time.Second, b44)
	data := []byte("rebind")
	n.expect(t, "first datagram", fromClient(b44, data).build(t), "r0", ReasonRedirect, toPeer(b44, data).build(t))
	if h := hopOf(t, n, b44, true); h.ExpiresNs == 0 {
		t.Fatalf("no next hop cached after a relayed datagram")
	}
	if err := n.p.AddBinding(b44); err != nil {
		t.Fatal(err)
	}
	if h := hopOf(t, n, b44, true); h.ExpiresNs == 0 {
		t.Errorf("adding the same binding again emptied its next hop")
	}

	newMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x77}
	n.ns.MustRun(t, "ip", "neigh", "replace", peer4.String(), "lladdr", newMAC.String(), "dev", "r1", "nud", "permanent")
	moved := b44
	moved.Peer = ap(peer4, 9)
	if err := n.p.AddBinding(moved); err != nil {
		t.Fatal(err)
	}
	if h := hopOf(t, n, moved, true); h != (relayNextHop{}) {
		t.Errorf("after AddBinding rewrote the entry, next hop %+v, want empty", h)
	}
	n.expect(t, "after the rewrite", fromClient(moved, data).build(t), "r0", ReasonRedirect, withDstMAC(toPeer(moved, data).build(t), newMAC))
}

// TestNextHopSameBytes: every relayed case of TestRelay gives the same
// verdict and bytes from a cached next hop as from a FIB lookup.
func TestNextHopSameBytes(t *testing.T) {
	n := newCachedRelayNet(t, time.Second, tableBindings...)
	for _, tc := range relayCases {
		if tc.out == nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			// Empty every next hop: a remove and add writes fresh values.
			for _, b := range tableBindings {
				if err := n.p.RemoveBinding(b); err != nil {
					t.Fatal(err)
				}
				if err := n.p.AddBinding(b); err != nil {
					t.Fatal(err)
				}
			}
			in, ingress := tc.input(t)
			want := tc.out.build(t)
			n.expect(t, "looked up", in, ingress, tc.want, want)
			cached := 0
			for _, b := range tableBindings {
				for _, toPeer := range []bool{true, false} {
					if hopOf(t, n, b, toPeer).ExpiresNs != 0 {
						cached++
					}
				}
			}
			if cached == 0 {
				t.Fatalf("no next hop cached after the first run")
			}
			n.expect(t, "cached", in, ingress, tc.want, want)
		})
	}
}

// TestNextHopClientToClient: a datagram between two clients of the relay
// caches both legs, the first as "stays on this host"; removing the second
// binding takes effect at once, and a change of the second leg's
// neighbour after the TTL.
func TestNextHopClientToClient(t *testing.T) {
	n := newCachedRelayNet(t, cacheTTL, bA, bB)
	data := []byte("to B")
	in := fromClient(bA, data).build(t)
	out := toClient(bB, data).build(t)
	start := time.Now()
	n.expect(t, "first datagram", in, "r0", ReasonTX, out)

	first, second := hopOf(t, n, bA, true), hopOf(t, n, bB, false)
	if first.ExpiresNs == 0 || first.Rc != fibNotFwded || first.IngressIfindex != uint32(n.ifindex["r0"]) {
		t.Errorf("first leg's next hop %+v, want this host (not forwarded) for r0", first)
	}
	if second.ExpiresNs == 0 || second.Ifindex != uint32(n.ifindex["r0"]) || second.Dmac != [6]byte(clientMAC) {
		t.Errorf("second leg's next hop %+v, want r0 to the client's MAC", second)
	}

	newMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x88}
	n.ns.MustRun(t, "ip", "-6", "neigh", "replace", client6.String(), "lladdr", newMAC.String(), "dev", "r0", "nud", "permanent")
	n.expect(t, "cached", in, "r0", ReasonTX, out)
	if time.Since(start) >= cacheTTL {
		t.Fatalf("the steps took %s, longer than the TTL (%s): cannot tell a cached next hop", time.Since(start), cacheTTL)
	}
	waitOut(start, cacheTTL)
	n.expect(t, "after the TTL", in, "r0", ReasonTX, withDstMAC(out, newMAC))

	if err := n.p.RemoveBinding(bB); err != nil {
		t.Fatal(err)
	}
	n.expect(t, "second binding removed", in, "r0", ReasonNoBinding, nil)
}
