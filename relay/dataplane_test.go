package relay

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/relaybox/relaybox/relay/proto"
)

// TestDataPlaneBeforeResponse proves on the wire that a binding reaches the
// data plane before the ChannelBind success response leaves: while the data
// plane's Apply is held, the client sees no answer; once it returns, the
// answer comes. A refresh and the deletion are applied before their answers
// too, and the relay takes every binding out of the data plane when it
// stops.
func TestDataPlaneBeforeResponse(t *testing.T) {
	tp := newTopology(t)
	clock := &seqClock{}
	plane := &recorder{clock: clock, block: make(chan struct{}), entered: make(chan proto.EventKind, 16)}
	r := tp.startRelay(t, 3478, plane)
	listen4 := r.listen[0]
	peer := tp.echoPeer(t, netip.AddrPortFrom(peerIP4, 5000))
	p4 := peer.LocalAddr().(*net.UDPAddr).AddrPort()

	rc := newRawClient(t, udpConn(t, tp.client.Do, netip.AddrPortFrom(clientIP4, 0)), listen4, testUser, testPass)
	relayed := rc.allocate()[0]
	bind := rc.build(stun.MethodChannelBind, peerAttr(p4), channelNumber(0x4000))
	rc.send(bind.Raw)
	select {
	case k := <-plane.entered:
		if k != proto.BindingCreated {
			t.Fatalf("data plane told %v first, want %v", k, proto.BindingCreated)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ChannelBind never reached the data plane")
	}
	if res, err := rc.response(bind.TransactionID, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("while the data plane applies the binding, the client got %v, %v; want nothing yet", res, err)
	}
	close(plane.block)
	res, err := rc.response(bind.TransactionID, 5*time.Second)
	if err != nil {
		t.Fatalf("ChannelBind answer after the data plane returned: %v", err)
	}
	mustSucceed(t, res)
	answered := clock.next()

	client := rc.c.LocalAddr().(*net.UDPAddr).AddrPort()
	want := proto.Binding{Client: client, Server: listen4, Channel: 0x4000, Relayed: relayed, Peer: p4}
	checkApplied := func(kind proto.EventKind, before uint64) {
		t.Helper()
		for _, e := range plane.snapshot() {
			if e.e.Kind == kind && e.e.Binding == want {
				if e.seq > before {
					t.Errorf("%v applied at %d, after the client saw the answer at %d", kind, e.seq, before)
				}
				return
			}
		}
		t.Errorf("data plane events %v: want %v %v", plane.snapshot(), kind, want)
	}
	checkApplied(proto.BindingCreated, answered)

	// The same ChannelBind again refreshes the binding.
	mustSucceed(t, rc.do(stun.MethodChannelBind, peerAttr(p4), channelNumber(0x4000)))
	checkApplied(proto.BindingRefreshed, clock.next())

	rc.send(channelData(0x4000, []byte("kernel or not")))
	if _, data, err := rc.readChannelData(5 * time.Second); err != nil || string(data) != "kernel or not" {
		t.Fatalf("ChannelData echo = %q, %v", data, err)
	}
	if st := r.Status(10); len(st.BindingList) != 1 || st.BindingList[0] != want || st.DataPlane.Mode != "recorder" {
		t.Errorf("status bindings %v mode %q, want [%v] and the recorder", st.BindingList, st.DataPlane.Mode, want)
	}

	// Refresh with lifetime 0 deletes the allocation: its binding leaves the
	// data plane before the answer.
	mustSucceed(t, rc.do(stun.MethodRefresh, lifetimeAttr(0)))
	checkApplied(proto.BindingDeleted, clock.next())

	// A binding still there at stop is removed by the stop.
	rc2 := newRawClient(t, udpConn(t, tp.client.Do, netip.AddrPortFrom(clientIP4, 0)), listen4, testUser, testPass)
	relayed2 := rc2.allocate()[0]
	mustSucceed(t, rc2.do(stun.MethodChannelBind, peerAttr(p4), channelNumber(0x4abc)))
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	want = proto.Binding{Client: rc2.c.LocalAddr().(*net.UDPAddr).AddrPort(), Server: listen4, Channel: 0x4abc, Relayed: relayed2, Peer: p4}
	checkApplied(proto.BindingDeleted, clock.next())
}

// TestDataPlaneOrderPion checks the same order with pion/turn's client: the
// wire tap on its socket sees the ChannelBind success after the data plane
// got the binding.
func TestDataPlaneOrderPion(t *testing.T) {
	tp := newTopology(t)
	clock := &seqClock{}
	plane := &recorder{clock: clock}
	r := tp.startRelay(t, 3478, plane)
	peer := tp.echoPeer(t, netip.AddrPortFrom(peerIP4, 5000))
	tap := &wireTap{clock: clock, PacketConn: udpConn(t, tp.client.Do, netip.AddrPortFrom(clientIP4, 0))}
	tc := newTURNClient(t, tap, r.listen[0], testUser, testPass)
	for range 3 {
		roundTrip(t, tc, peer.LocalAddr(), []byte("order"))
	}
	waitFor(t, 5*time.Second, "no ChannelBind success on the wire", func() bool {
		_, ok := tap.first(stun.NewType(stun.MethodChannelBind, stun.ClassSuccessResponse))
		return ok
	})
	seen, _ := tap.first(stun.NewType(stun.MethodChannelBind, stun.ClassSuccessResponse))
	var applied uint64
	for _, e := range plane.snapshot() {
		if e.e.Kind == proto.BindingCreated && e.e.Binding.Relayed == tc.relayedAddr() {
			applied = e.seq
		}
	}
	if applied == 0 || applied > seen {
		t.Errorf("BindingCreated applied at %d, ChannelBind success seen at %d: want the binding first", applied, seen)
	}
}
