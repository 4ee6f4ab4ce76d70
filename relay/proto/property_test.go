package proto

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// TestRandomChurn drives clients doing random things over simulated hours
// and checks, after every step, what must always hold:
//   - the data plane built from events equals Server.Bindings (harness.apply);
//   - events make sense in order: no binding before its socket, no delete
//     of what is not there (harness.apply);
//   - the open sockets are exactly the allocations' relayed addresses;
//   - every answer is a response code this relay may give for the method;
//   - nothing reaches a peer without a live permission for its IP address,
//     from anything but an allocation's relayed address of its family;
//   - quotas hold.
func TestRandomChurn(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			churn(t, seed, 400)
		})
	}
}

var allowedCodes = map[stun.Method][]int{
	stun.MethodAllocate:         {200, 400, 437, 440, 442, 486, 508},
	stun.MethodRefresh:          {200, 437, 443},
	stun.MethodCreatePermission: {200, 403, 437, 443, 508},
	stun.MethodChannelBind:      {200, 400, 403, 437, 443, 508},
}

func churn(t *testing.T, seed uint64, steps int) {
	r := rand.New(rand.NewPCG(seed, 42))
	h := newHarness(t, func(c *Config) {
		c.UserQuota = 3
		c.MaxAllocations = 6
		c.MaxPermissions = 4
		c.PortMin, c.PortMax = 50000, 50009
	})
	var clients []*client
	for i := range 8 {
		user, pass := "alice", "secret"
		if i%2 == 1 {
			user, pass = "bob", "hunter2"
		}
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(10 + i)}), 40000)
		c := h.client(addr, user, pass)
		if i == 7 {
			c.addr, c.server = netip.AddrPortFrom(netip.MustParseAddr("2001:2::10"), 40000), listen6
		}
		clients = append(clients, c)
	}
	peers := []netip.AddrPort{peer1, peer2, peer6, netip.MustParseAddrPort("[2001:2::21]:7000"), netip.MustParseAddrPort("127.0.0.1:9")}
	pick := func() netip.AddrPort { return peers[r.IntN(len(peers))] }
	relayedOf := map[*client][]netip.AddrPort{}

	for step := range steps {
		c := clients[r.IntN(len(clients))]
		var method stun.Method
		var res *stun.Message
		switch r.IntN(10) {
		case 0:
			method = stun.MethodAllocate
			var extra []stun.Setter
			switch r.IntN(4) {
			case 1:
				extra = append(extra, additionalFamily(familyIPv6))
			case 2:
				extra = append(extra, requestedFamily(familyIPv6))
			case 3:
				extra = append(extra, evenPort(r.IntN(2) == 0))
			}
			res = c.allocate(extra...)
			if code(res) == 200 {
				relayedOf[c] = xorAddrs(res, stun.AttrXORRelayedAddress)
			}
		case 1:
			method = stun.MethodRefresh
			lifetimes := []uint32{0, 60, 600, 7200}
			res = c.call(method, lifetime(lifetimes[r.IntN(len(lifetimes))]))
		case 2, 3:
			method = stun.MethodCreatePermission
			res = c.call(method, peerAddr(pick()))
		case 4, 5:
			method = stun.MethodChannelBind
			res = c.call(method, channelNumber(uint16(0x4000+r.IntN(3))), peerAddr(pick()))
		case 6:
			checkRelayed(t, h, c.channelData(uint16(0x4000+r.IntN(3)), []byte("cd")))
		case 7:
			checkRelayed(t, h, c.send(pick(), []byte("send")))
		case 8:
			// To a relayed address this client once had: it may have
			// expired and gone to another client since.
			if rel := relayedOf[c]; len(rel) > 0 {
				to := rel[r.IntN(len(rel))]
				owner := h.s.byRelayed[to]
				for _, tr := range h.fromPeer(pick(), to, []byte("peer")) {
					if owner == nil || tr.From != owner.ft.server || tr.To != owner.ft.client {
						t.Errorf("step %d: peer data to %s went %s→%s, not to the allocation's client", step, to, tr.From, tr.To)
					}
				}
			}
		case 9:
			h.advance(time.Duration(r.IntN(240)) * time.Second)
		}
		if res != nil && !contains(allowedCodes[method], code(res)) {
			t.Fatalf("step %d: %v answered %d: not a code this relay gives for it", step, method, code(res))
		}
		checkSockets(t, h)
		if st := h.s.Stats(); st.Allocations > 6 {
			t.Fatalf("step %d: %d allocations, over max-allocations 6", step, st.Allocations)
		}
	}
	h.advance(5 * time.Hour)
	if st := h.state(); st != (state{}) || len(h.sockets) != 0 {
		t.Errorf("hours later: %+v, sockets %v; want nothing left", st, h.sockets)
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// checkRelayed checks datagrams to peers: from a relayed address of the
// peer's family, to a permitted peer.
func checkRelayed(t *testing.T, h *harness, out []Transmit) {
	t.Helper()
	for _, tr := range out {
		a := h.s.byRelayed[tr.From]
		if a == nil || tr.From.Addr().Is4() != tr.To.Addr().Is4() {
			t.Errorf("datagram %s→%s not from a relayed address of the peer's family", tr.From, tr.To)
			continue
		}
		if p := a.perms[tr.To.Addr()]; p == nil || !h.now.Before(p.expires) {
			t.Errorf("datagram to %s without a live permission", tr.To)
		}
	}
}

// checkSockets checks that the sockets opened and closed through events are
// the allocations' relayed addresses.
func checkSockets(t *testing.T, h *harness) {
	t.Helper()
	want := map[netip.AddrPort]bool{}
	users := map[string]int{}
	for a := range h.s.Allocations() {
		for _, r := range a.Relayed {
			want[r] = true
		}
		users[a.Username]++
	}
	if !equal(want, h.sockets) {
		t.Fatalf("sockets from events %v, allocations' relayed addresses %v", h.sockets, want)
	}
	for u, n := range users {
		if n > 3 {
			t.Fatalf("user %s has %d allocations, over user-quota 3", u, n)
		}
	}
}
