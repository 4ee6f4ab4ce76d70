package proto

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/relaybox/relaybox/relay/auth"
)

// errorCase is one request and the answer RFC 8489 or RFC 8656 gives it.
type errorCase struct {
	name  string
	edit  func(*Config)                   // config change, nil for testConfig
	setup func(h *harness) *client        // state before; nil: alice, nothing allocated
	req   func(c *client) []byte          // the request
	want  int                             // ERROR-CODE, 200 for success
	check func(*testing.T, *stun.Message) // more about the answer, if anything
}

func runErrorCases(t *testing.T, cases []errorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.edit)
			var c *client
			if tc.setup != nil {
				c = tc.setup(h)
			} else {
				c = h.alice()
			}
			res := c.do(tc.req(c))
			if got := code(res); got != tc.want {
				t.Fatalf("answer = %v with code %d, want code %d", res, got, tc.want)
			}
			if tc.want != 200 {
				checkErrorResponse(t, res, tc.want)
			}
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}
}

// checkErrorResponse checks what every error answer must carry: integrity
// unless it is an answer to an unauthenticated request, and never USERNAME.
func checkErrorResponse(t *testing.T, res *stun.Message, code int) {
	t.Helper()
	integrity := res.Contains(stun.AttrMessageIntegrity) || res.Contains(stun.AttrMessageIntegritySHA256)
	switch code {
	case 401, 438:
		if integrity {
			t.Errorf("%d answer has integrity; RFC 8489 says it should not", code)
		}
		for _, a := range []stun.AttrType{stun.AttrRealm, stun.AttrNonce, stun.AttrPasswordAlgorithms} {
			if !res.Contains(a) {
				t.Errorf("%d answer lacks %v", code, a)
			}
		}
		var nonce stun.Nonce
		if err := nonce.GetFrom(res); err == nil && !strings.HasPrefix(nonce.String(), auth.NonceCookie) {
			t.Errorf("NONCE %q lacks the RFC 8489 nonce cookie %s", nonce, auth.NonceCookie)
		}
		if res.Contains(stun.AttrSoftware) {
			t.Errorf("unauthenticated %d answer carries SOFTWARE: bytes an attacker could reflect", code)
		}
	}
	if res.Contains(stun.AttrUsername) {
		t.Errorf("error answer carries USERNAME")
	}
}

// withAllocation is a setup: alice allocates on client1.
func withAllocation(setters ...stun.Setter) func(h *harness) *client {
	return func(h *harness) *client {
		c := h.alice()
		c.mustAllocate(setters...)
		return c
	}
}

func allocateWith(setters ...stun.Setter) func(c *client) []byte {
	return func(c *client) []byte { return c.authed(stun.MethodAllocate, setters...) }
}

func TestAllocateErrors(t *testing.T) {
	udp := transport(protoUDP)
	token := rawAttr(stun.AttrReservationToken, []byte("12345678"))
	runErrorCases(t, []errorCase{
		{name: "success", req: allocateWith(udp), want: 200, check: func(t *testing.T, res *stun.Message) {
			relayed := xorAddrs(res, stun.AttrXORRelayedAddress)
			if len(relayed) != 1 || relayed[0].Addr() != relay4 || relayed[0].Port() < 50000 || relayed[0].Port() > 50999 {
				t.Errorf("XOR-RELAYED-ADDRESS = %v, want one %s address with a port in 50000-50999", relayed, relay4)
			}
			if got := xorAddrs(res, stun.AttrXORMappedAddress); !slices.Equal(got, []netip.AddrPort{client1}) {
				t.Errorf("XOR-MAPPED-ADDRESS = %v, want %v", got, client1)
			}
			if got := lifetimeOf(res); got != 600 {
				t.Errorf("LIFETIME = %d, want 600 (RFC 8656 default)", got)
			}
			var sw stun.Software
			if err := sw.GetFrom(res); err != nil || sw.String() != "relaybox test" {
				t.Errorf("SOFTWARE = %q, %v; want the configured one", sw, err)
			}
		}},
		{name: "no REQUESTED-TRANSPORT", req: allocateWith(), want: 400},
		{name: "REQUESTED-TRANSPORT of 2 bytes", req: allocateWith(rawAttr(stun.AttrRequestedTransport, []byte{17, 0})), want: 400},
		{name: "REQUESTED-TRANSPORT TCP", req: allocateWith(transport(6)), want: 442},
		{name: "second Allocate on the 5-tuple", setup: withAllocation(), req: allocateWith(udp), want: 437},
		{name: "LIFETIME of 3 bytes", req: allocateWith(udp, rawAttr(stun.AttrLifetime, []byte{0, 0, 1})), want: 400},
		{name: "RESERVATION-TOKEN with EVEN-PORT", req: allocateWith(udp, token, evenPort(false)), want: 400},
		{name: "RESERVATION-TOKEN with REQUESTED-ADDRESS-FAMILY", req: allocateWith(udp, token, requestedFamily(familyIPv4)), want: 400},
		{name: "RESERVATION-TOKEN with ADDITIONAL-ADDRESS-FAMILY", req: allocateWith(udp, token, additionalFamily(familyIPv6)), want: 400},
		{name: "RESERVATION-TOKEN of 4 bytes", req: allocateWith(udp, rawAttr(stun.AttrReservationToken, []byte("1234"))), want: 400},
		{name: "unknown RESERVATION-TOKEN", req: allocateWith(udp, token), want: 508},
		{name: "both address family attributes", req: allocateWith(udp, requestedFamily(familyIPv4), additionalFamily(familyIPv6)), want: 400},
		{name: "REQUESTED-ADDRESS-FAMILY IPv6 on an IPv4 relay", edit: ipv4Only, req: allocateWith(udp, requestedFamily(familyIPv6)), want: 440},
		{name: "REQUESTED-ADDRESS-FAMILY 0x03", req: allocateWith(udp, requestedFamily(3)), want: 440},
		{name: "REQUESTED-ADDRESS-FAMILY of 2 bytes", req: allocateWith(udp, rawAttr(stun.AttrRequestedAddressFamily, []byte{1, 0})), want: 400},
		{name: "no REQUESTED-ADDRESS-FAMILY on an IPv6 relay", edit: ipv6Only, req: allocateWith(udp), want: 440},
		{name: "ADDITIONAL-ADDRESS-FAMILY on an IPv6 relay", edit: ipv6Only, req: allocateWith(udp, additionalFamily(familyIPv6)), want: 440},
		{name: "EVEN-PORT R with ADDITIONAL-ADDRESS-FAMILY", req: allocateWith(udp, evenPort(true), additionalFamily(familyIPv6)), want: 400},
		{name: "EVEN-PORT of 4 bytes", req: allocateWith(udp, rawAttr(stun.AttrEvenPort, []byte{0x80, 0, 0, 0})), want: 400},
		{name: "ADDITIONAL-ADDRESS-FAMILY IPv4", req: allocateWith(udp, additionalFamily(familyIPv4)), want: 400},
		{name: "ADDITIONAL-ADDRESS-FAMILY on an IPv4 relay", edit: ipv4Only, req: allocateWith(udp, additionalFamily(familyIPv6)), want: 200,
			check: func(t *testing.T, res *stun.Message) {
				if got := xorAddrs(res, stun.AttrXORRelayedAddress); len(got) != 1 || !got[0].Addr().Is4() {
					t.Errorf("XOR-RELAYED-ADDRESS = %v, want one IPv4", got)
				}
				v, err := res.Get(attrAddressErrorCode)
				if err != nil || len(v) < 4 || v[0] != familyIPv6 || int(v[2])*100+int(v[3]) != 440 {
					t.Errorf("ADDRESS-ERROR-CODE = %x, %v; want IPv6 440", v, err)
				}
			}},
		{name: "user quota", edit: func(c *Config) { c.UserQuota = 1 },
			setup: func(h *harness) *client {
				h.client(client2, "alice", "secret").mustAllocate()
				return h.alice()
			}, req: allocateWith(udp), want: 486},
		{name: "user quota counts REST users by name", edit: func(c *Config) { c.UserQuota = 1 },
			setup: func(h *harness) *client {
				u := auth.RESTUsername(t0.Add(time.Hour), "carol")
				h.client(client2, u, auth.RESTPassword(restKey, u)).mustAllocate()
				u2 := auth.RESTUsername(t0.Add(2*time.Hour), "carol")
				return h.client(client1, u2, auth.RESTPassword(restKey, u2))
			}, req: allocateWith(udp), want: 486},
		{name: "total quota", edit: func(c *Config) { c.MaxAllocations = 1 },
			setup: func(h *harness) *client {
				h.client(client2, "bob", "hunter2").mustAllocate()
				return h.alice()
			}, req: allocateWith(udp), want: 486},
		{name: "no free port", edit: func(c *Config) { c.PortMin, c.PortMax = 50000, 50000 },
			setup: func(h *harness) *client {
				h.client(client2, "bob", "hunter2").mustAllocate()
				return h.alice()
			}, req: allocateWith(udp), want: 508},
		{name: "Bind refuses every port", edit: func(c *Config) {
			c.Bind = func([]netip.AddrPort) error { return errors.New("EADDRINUSE") }
		}, req: allocateWith(udp), want: 508},
		{name: "EVEN-PORT R without a free pair", edit: func(c *Config) { c.PortMin, c.PortMax = 50000, 50001 },
			setup: func(h *harness) *client {
				h.client(client2, "bob", "hunter2").mustAllocate(evenPort(false)) // takes 50000
				return h.alice()
			}, req: allocateWith(udp, evenPort(true)), want: 508},
		{name: "unknown comprehension-required attributes", req: allocateWith(udp, rawAttr(0x7FFF, []byte{1}), rawAttr(stun.AttrChangeRequest, []byte{0, 0, 0, 0}), rawAttr(0x7FFF, nil)), want: 420,
			check: func(t *testing.T, res *stun.Message) {
				var u stun.UnknownAttributes
				if err := u.GetFrom(res); err != nil {
					t.Fatalf("UNKNOWN-ATTRIBUTES: %v", err)
				}
				if diff := diff(stun.UnknownAttributes{0x7FFF, stun.AttrChangeRequest}, u); diff != "" {
					t.Errorf("UNKNOWN-ATTRIBUTES (-want +got):\n%s", diff)
				}
			}},
		{name: "unknown comprehension-optional attribute is ignored", req: allocateWith(udp, rawAttr(0xC0FF, []byte("x"))), want: 200},
		{name: "DONT-FRAGMENT is understood", req: allocateWith(udp, dontFragment), want: 200},
		{name: "Send as a request", req: func(c *client) []byte { return c.unauth(stun.MethodSend, peerAddr(peer1)) }, want: 400},
		{name: "unknown method", req: func(c *client) []byte { return c.unauth(stun.Method(0x0FF)) }, want: 400},
	})
}

func ipv4Only(c *Config) { c.RelayAddresses = []netip.Addr{relay4} }
func ipv6Only(c *Config) { c.RelayAddresses = []netip.Addr{relay6} }

func TestAuthErrors(t *testing.T) {
	udp := transport(protoUDP)
	// manual builds a request with exactly the given auth attributes.
	manual := func(setters ...stun.Setter) func(c *client) []byte {
		return func(c *client) []byte {
			c.challenge()
			c.newTxn()
			msg, err := stun.Build(append([]stun.Setter{stun.NewType(stun.MethodAllocate, stun.ClassRequest), stun.NewTransactionIDSetter(c.txn), udp}, setters...)...)
			if err != nil {
				t.Fatal(err)
			}
			return msg.Raw
		}
	}
	integrity := stun.NewLongTermIntegrity("alice", testRealm, "secret")
	rest := auth.RESTUsername(t0.Add(time.Hour), "carol")
	expired := auth.RESTUsername(t0.Add(-time.Second), "carol")
	runErrorCases(t, []errorCase{
		{name: "no MESSAGE-INTEGRITY", req: func(c *client) []byte { return c.unauth(stun.MethodAllocate, udp) }, want: 401},
		{name: "no MESSAGE-INTEGRITY, FINGERPRINT mirrored", req: func(c *client) []byte { return c.unauth(stun.MethodAllocate, udp, stun.Fingerprint) }, want: 401,
			check: func(t *testing.T, res *stun.Message) {
				if !res.Contains(stun.AttrFingerprint) {
					t.Errorf("401 to a request with FINGERPRINT lacks FINGERPRINT")
				}
			}},
		{name: "no USERNAME", req: func(c *client) []byte {
			f := manual(stun.NewRealm(testRealm), stun.NewNonce("x"), integrity)
			return f(c)
		}, want: 400},
		{name: "no REALM", req: manual(stun.NewUsername("alice"), stun.NewNonce("x"), integrity), want: 400},
		{name: "no NONCE", req: manual(stun.NewUsername("alice"), stun.NewRealm(testRealm), integrity), want: 400},
		{name: "USERHASH instead of USERNAME", req: func(c *client) []byte {
			c.challenge()
			c.newTxn()
			msg, _ := stun.Build(stun.NewType(stun.MethodAllocate, stun.ClassRequest), stun.NewTransactionIDSetter(c.txn), udp,
				rawAttr(stun.AttrUserhash, make([]byte, 32)), stun.NewRealm(testRealm), stun.NewNonce(c.nonce), integrity)
			return msg.Raw
		}, want: 401},
		{name: "unknown user", setup: func(h *harness) *client { return h.client(client1, "mallory", "secret") }, req: allocateWith(udp), want: 401},
		{name: "wrong password", setup: func(h *harness) *client { return h.client(client1, "alice", "guess") }, req: allocateWith(udp), want: 401},
		{name: "wrong realm", req: func(c *client) []byte {
			c.challenge()
			c.newTxn()
			msg, _ := stun.Build(stun.NewType(stun.MethodAllocate, stun.ClassRequest), stun.NewTransactionIDSetter(c.txn), udp,
				stun.NewUsername("alice"), stun.NewRealm("other.realm"), stun.NewNonce(c.nonce),
				stun.NewLongTermIntegrity("alice", "other.realm", "secret"))
			return msg.Raw
		}, want: 401},
		{name: "REST credential", setup: func(h *harness) *client { return h.client(client1, rest, auth.RESTPassword(restKey, rest)) }, req: allocateWith(udp), want: 200},
		{name: "REST credential under a rotated-out secret", edit: func(c *Config) { c.Auth.Secrets = []string{"new-secret", restKey} },
			setup: func(h *harness) *client { return h.client(client1, rest, auth.RESTPassword(restKey, rest)) }, req: allocateWith(udp), want: 200},
		{name: "REST credential of an unknown secret", setup: func(h *harness) *client { return h.client(client1, rest, auth.RESTPassword("guess", rest)) }, req: allocateWith(udp), want: 401},
		{name: "expired REST credential", setup: func(h *harness) *client { return h.client(client1, expired, auth.RESTPassword(restKey, expired)) }, req: allocateWith(udp), want: 401},
		{name: "stale nonce", setup: func(h *harness) *client {
			c := h.alice()
			c.challenge()
			h.advance(DefaultNonceLifetime)
			return c
		}, req: allocateWith(udp), want: 438, check: func(t *testing.T, res *stun.Message) {
			var n stun.Nonce
			if err := n.GetFrom(res); err != nil || len(n) != auth.NonceLen {
				t.Errorf("438 NONCE = %q, %v; want a fresh nonce", n, err)
			}
		}},
		{name: "nonce of another client", setup: func(h *harness) *client {
			other := h.client(client2, "alice", "secret")
			other.challenge()
			c := h.alice()
			c.nonce = other.nonce
			return c
		}, req: allocateWith(udp), want: 438},
		{name: "nonce not made by the relay", setup: func(h *harness) *client {
			c := h.alice()
			c.nonce = "f//499k954d6OL34oL9FSTvy64sA"
			return c
		}, req: allocateWith(udp), want: 438},
		{name: "SHA-256 negotiated", setup: func(h *harness) *client { c := h.alice(); c.sha256 = true; return c }, req: allocateWith(udp), want: 200,
			check: func(t *testing.T, res *stun.Message) {
				if !res.Contains(stun.AttrMessageIntegritySHA256) || res.Contains(stun.AttrMessageIntegrity) {
					t.Errorf("answer to a SHA-256 request: %v; want MESSAGE-INTEGRITY-SHA256 only (RFC 8489 9.2.4)", res)
				}
			}},
		{name: "MESSAGE-INTEGRITY answered with MESSAGE-INTEGRITY", req: allocateWith(udp), want: 200,
			check: func(t *testing.T, res *stun.Message) {
				if !res.Contains(stun.AttrMessageIntegrity) || res.Contains(stun.AttrMessageIntegritySHA256) {
					t.Errorf("answer to an RFC 5389 request: %v; want MESSAGE-INTEGRITY only", res)
				}
			}},
		{name: "bid-down: PASSWORD-ALGORITHMS changed", req: func(c *client) []byte {
			c.challenge()
			c.newTxn()
			msg, _ := stun.Build(stun.NewType(stun.MethodAllocate, stun.ClassRequest), stun.NewTransactionIDSetter(c.txn), udp,
				stun.NewUsername("alice"), stun.NewRealm(testRealm), stun.NewNonce(c.nonce),
				rawAttr(stun.AttrPasswordAlgorithms, []byte{0, 1, 0, 0}), rawAttr(stun.AttrPasswordAlgorithm, []byte{0, 1, 0, 0}), integrity)
			return msg.Raw
		}, want: 400},
		{name: "bid-down: PASSWORD-ALGORITHM alone", req: func(c *client) []byte {
			c.challenge()
			c.newTxn()
			msg, _ := stun.Build(stun.NewType(stun.MethodAllocate, stun.ClassRequest), stun.NewTransactionIDSetter(c.txn), udp,
				stun.NewUsername("alice"), stun.NewRealm(testRealm), stun.NewNonce(c.nonce),
				rawAttr(stun.AttrPasswordAlgorithm, []byte{0, 1, 0, 0}), integrity)
			return msg.Raw
		}, want: 400},
		{name: "PASSWORD-ALGORITHM not offered", req: func(c *client) []byte {
			c.challenge()
			c.newTxn()
			msg, _ := stun.Build(stun.NewType(stun.MethodAllocate, stun.ClassRequest), stun.NewTransactionIDSetter(c.txn), udp,
				stun.NewUsername("alice"), stun.NewRealm(testRealm), stun.NewNonce(c.nonce),
				rawAttr(stun.AttrPasswordAlgorithms, offeredAlgorithmsForTest), rawAttr(stun.AttrPasswordAlgorithm, []byte{0, 3, 0, 0}), integrity)
			return msg.Raw
		}, want: 400},
		{name: "MESSAGE-INTEGRITY-SHA256 with the MD5 key", req: func(c *client) []byte {
			c.challenge()
			c.newTxn()
			msg, _ := stun.Build(stun.NewType(stun.MethodAllocate, stun.ClassRequest), stun.NewTransactionIDSetter(c.txn), udp,
				stun.NewUsername("alice"), stun.NewRealm(testRealm), stun.NewNonce(c.nonce))
			addIntegritySHA256(msg, auth.Key(auth.MD5, "alice", testRealm, []byte("secret")))
			return msg.Raw
		}, want: 200, check: func(t *testing.T, res *stun.Message) {
			if err := checkIntegritySHA256(res, auth.Key(auth.MD5, "alice", testRealm, []byte("secret"))); err != nil {
				t.Errorf("answer: %v", err)
			}
		}},
		{name: "attributes after MESSAGE-INTEGRITY are ignored", req: func(c *client) []byte {
			c.challenge()
			c.newTxn()
			// REQUESTED-TRANSPORT after MESSAGE-INTEGRITY is not covered by it: ignored, so it is missing.
			msg, _ := stun.Build(stun.NewType(stun.MethodAllocate, stun.ClassRequest), stun.NewTransactionIDSetter(c.txn),
				stun.NewUsername("alice"), stun.NewRealm(testRealm), stun.NewNonce(c.nonce), integrity, udp)
			return msg.Raw
		}, want: 400},
	})
}

func TestRefreshErrors(t *testing.T) {
	refresh := func(setters ...stun.Setter) func(c *client) []byte {
		return func(c *client) []byte { return c.authed(stun.MethodRefresh, setters...) }
	}
	runErrorCases(t, []errorCase{
		{name: "no allocation", req: refresh(), want: 437},
		{name: "another user on the 5-tuple", setup: func(h *harness) *client {
			h.alice().mustAllocate()
			return h.client(client1, "bob", "hunter2")
		}, req: refresh(), want: 441},
		{name: "REQUESTED-ADDRESS-FAMILY not allocated", setup: withAllocation(), req: refresh(requestedFamily(familyIPv6)), want: 443},
		{name: "REQUESTED-ADDRESS-FAMILY 0x03", setup: withAllocation(), req: refresh(requestedFamily(3)), want: 443},
		{name: "LIFETIME of 2 bytes", setup: withAllocation(), req: refresh(rawAttr(stun.AttrLifetime, []byte{0, 1})), want: 400},
		{name: "success", setup: withAllocation(), req: refresh(lifetime(1200)), want: 200, check: func(t *testing.T, res *stun.Message) {
			if got := lifetimeOf(res); got != 1200 {
				t.Errorf("LIFETIME = %d, want 1200", got)
			}
		}},
	})
}

func TestPermissionErrors(t *testing.T) {
	perm := func(setters ...stun.Setter) func(c *client) []byte {
		return func(c *client) []byte { return c.authed(stun.MethodCreatePermission, setters...) }
	}
	badFamily := rawAttr(stun.AttrXORPeerAddress, []byte{0, 3, 0, 0, 1, 2, 3, 4})
	runErrorCases(t, []errorCase{
		{name: "no allocation", req: perm(peerAddr(peer1)), want: 437},
		{name: "another user on the 5-tuple", setup: func(h *harness) *client {
			h.alice().mustAllocate()
			return h.client(client1, "bob", "hunter2")
		}, req: perm(peerAddr(peer1)), want: 441},
		{name: "no XOR-PEER-ADDRESS", setup: withAllocation(), req: perm(), want: 400},
		{name: "XOR-PEER-ADDRESS of family 3", setup: withAllocation(), req: perm(badFamily), want: 400},
		{name: "XOR-PEER-ADDRESS of 5 bytes", setup: withAllocation(), req: perm(rawAttr(stun.AttrXORPeerAddress, []byte{0, 1, 0, 0, 1})), want: 400},
		{name: "IPv6 peer of an IPv4 allocation", setup: withAllocation(), req: perm(peerAddr(peer6)), want: 443},
		{name: "IPv4 peer of an IPv6 allocation", setup: withAllocation(requestedFamily(familyIPv6)), req: perm(peerAddr(peer1)), want: 443},
		{name: "mapped IPv4 peer of an IPv6 allocation", setup: withAllocation(requestedFamily(familyIPv6)), req: perm(peerAddr16(peer1)), want: 443},
		{name: "loopback peer", setup: withAllocation(), req: perm(peerAddr(netip.MustParseAddrPort("127.0.0.1:80"))), want: 403},
		{name: "one refused peer among allowed ones", setup: withAllocation(), req: perm(peerAddr(peer1), peerAddr(netip.MustParseAddrPort("10.0.0.1:80"))), want: 403},
		{name: "the relay itself", setup: withAllocation(), edit: func(c *Config) { c.AllowPeers = nil }, req: perm(peerAddr(netip.AddrPortFrom(relay4, 9))), want: 403},
		{name: "more permissions than max-permissions", edit: func(c *Config) { c.MaxPermissions = 1 },
			setup: func(h *harness) *client {
				c := h.alice()
				c.mustAllocate()
				c.permit(peer1)
				return c
			}, req: perm(peerAddr(peer2)), want: 508},
		{name: "refreshing at max-permissions", edit: func(c *Config) { c.MaxPermissions = 1 },
			setup: func(h *harness) *client {
				c := h.alice()
				c.mustAllocate()
				c.permit(peer1)
				return c
			}, req: perm(peerAddr(peer1)), want: 200},
		{name: "several peers", setup: withAllocation(), req: perm(peerAddr(peer1), peerAddr(peer2)), want: 200},
	})
}

func TestChannelBindErrors(t *testing.T) {
	bind := func(setters ...stun.Setter) func(c *client) []byte {
		return func(c *client) []byte { return c.authed(stun.MethodChannelBind, setters...) }
	}
	bound := func(h *harness) *client {
		c := h.alice()
		c.mustAllocate()
		c.bind(0x4000, peer1)
		return c
	}
	runErrorCases(t, []errorCase{
		{name: "no allocation", req: bind(channelNumber(0x4000), peerAddr(peer1)), want: 437},
		{name: "another user on the 5-tuple", setup: func(h *harness) *client {
			h.alice().mustAllocate()
			return h.client(client1, "bob", "hunter2")
		}, req: bind(channelNumber(0x4000), peerAddr(peer1)), want: 441},
		{name: "no CHANNEL-NUMBER", setup: withAllocation(), req: bind(peerAddr(peer1)), want: 400},
		{name: "CHANNEL-NUMBER of 2 bytes", setup: withAllocation(), req: bind(rawAttr(stun.AttrChannelNumber, []byte{0x40, 0}), peerAddr(peer1)), want: 400},
		{name: "channel 0x3FFF", setup: withAllocation(), req: bind(channelNumber(0x3FFF), peerAddr(peer1)), want: 400},
		{name: "channel 0x8000", setup: withAllocation(), req: bind(channelNumber(0x8000), peerAddr(peer1)), want: 400},
		{name: "channel 0x4FFF (RFC 8656's last)", setup: withAllocation(), req: bind(channelNumber(0x4FFF), peerAddr(peer1)), want: 200},
		{name: "channel 0x7FFF (RFC 5766's last)", setup: withAllocation(), req: bind(channelNumber(0x7FFF), peerAddr(peer1)), want: 200},
		{name: "no XOR-PEER-ADDRESS", setup: withAllocation(), req: bind(channelNumber(0x4000)), want: 400},
		{name: "IPv6 peer of an IPv4 allocation", setup: withAllocation(), req: bind(channelNumber(0x4000), peerAddr(peer6)), want: 443},
		{name: "private peer", setup: withAllocation(), req: bind(channelNumber(0x4000), peerAddr(netip.MustParseAddrPort("192.168.1.1:80"))), want: 403},
		{name: "the relay's listen address", setup: withAllocation(), req: bind(channelNumber(0x4000), peerAddr(listen4)), want: 403},
		{name: "peer port 0", setup: withAllocation(), req: bind(channelNumber(0x4000), peerAddr(netip.AddrPortFrom(peer1.Addr(), 0))), want: 403},
		{name: "number bound to another peer", setup: bound, req: bind(channelNumber(0x4000), peerAddr(peer2)), want: 400},
		{name: "peer bound to another number", setup: bound, req: bind(channelNumber(0x4001), peerAddr(peer1)), want: 400},
		{name: "same peer on another port is another transport address", setup: bound, req: bind(channelNumber(0x4001), peerAddr(netip.AddrPortFrom(peer1.Addr(), 5001))), want: 200},
		{name: "refresh", setup: bound, req: bind(channelNumber(0x4000), peerAddr(peer1)), want: 200},
		{name: "a new permission past max-permissions", edit: func(c *Config) { c.MaxPermissions = 1 }, setup: bound, req: bind(channelNumber(0x4001), peerAddr(peer2)), want: 508},
	})
}
