package policy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The public addresses below are policy inputs only: nothing here sends to them.

func mustNew(t testing.TB, c Config) *Policy {
	t.Helper()
	p, err := New(c)
	if err != nil {
		t.Fatalf("New(%+v) = %v", c, err)
	}
	return p
}

// TestHostilePeers is the table of addresses a default relay must refuse,
// in every spelling an attacker might try.
func TestHostilePeers(t *testing.T) {
	p := mustNew(t, Config{
		Self:   []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::7")},
		Listen: []netip.AddrPort{netip.MustParseAddrPort("198.51.100.7:3478")},
	})
	for _, tc := range []struct {
		addr string
		want Verdict
	}{
		{"127.0.0.1", Loopback},
		{"127.255.255.254", Loopback},
		{"::1", Loopback},
		{"::ffff:127.0.0.1", Loopback},        // IPv4-mapped
		{"::ffff:7f00:1", Loopback},           // the same, in hex
		{"::127.0.0.1", Loopback},             // IPv4-compatible
		{"::ffff:10.1.2.3", Private},          // IPv4-mapped private
		{"::10.1.2.3", Private},               // IPv4-compatible private
		{"::ffff:169.254.169.254", LinkLocal}, // cloud metadata, mapped
		{"::ffff:0.0.0.0", Unspecified},
		{"0.0.0.0", Unspecified},
		{"::", Unspecified},
		{"0.1.2.3", Reserved},
		{"10.0.0.1", Private},
		{"172.16.0.1", Private},
		{"172.31.255.255", Private},
		{"192.168.1.1", Private},
		{"fc00::1", Private},
		{"fd12:3456::1", Private},
		{"100.64.0.1", Shared},
		{"100.127.255.255", Shared},
		{"169.254.169.254", LinkLocal},
		{"fe80::1", LinkLocal},
		{"224.0.0.1", Multicast},
		{"239.255.255.250", Multicast},
		{"ff02::1", Multicast},
		{"::ffff:224.0.0.251", Multicast},
		{"255.255.255.255", Broadcast},
		{"240.0.0.1", Reserved},
		{"192.0.0.170", Reserved},
		{"192.0.2.1", Documentation},
		{"198.51.100.1", Documentation},
		{"203.0.113.1", Documentation},
		{"2001:db8::1", Documentation},
		{"3fff::1", Documentation},
		{"198.18.0.1", Benchmarking},
		{"198.19.255.255", Benchmarking},
		{"2001:2::1", Benchmarking},
		{"64:ff9b::7f00:1", Translation}, // NAT64 of 127.0.0.1
		{"64:ff9b::a00:1", Translation},  // NAT64 of 10.0.0.1
		{"64:ff9b::808:808", Translation},
		{"64:ff9b:1::1", Translation},
		{"2002:7f00:1::1", Translation},      // 6to4 of 127.0.0.1
		{"2001:0:4136:e378::1", Translation}, // Teredo
		{"192.88.99.1", Translation},
		{"2001:10::1", Reserved}, // ORCHID, inside 2001::/23
		{"100::1", Reserved},     // discard-only
		{"5f00::1", Reserved},    // SRv6
		{"fec0::1", Reserved},    // site-local
		{"1::1", Reserved},       // outside 2000::/3
		{"4000::1", Reserved},
		{"::1:0:0:1", Reserved}, // ::/8 but not IPv4-compatible
		{"198.51.100.7", Self},  // the relay's own address is named as such
		{"::ffff:198.51.100.7", Self},
	} {
		a := netip.MustParseAddr(tc.addr)
		got := p.Check(a)
		if got != tc.want {
			t.Errorf("Check(%s) = %v, want %v", tc.addr, got, tc.want)
		}
		if got.Allowed() {
			t.Errorf("Check(%s) allowed a hostile address", tc.addr)
		}
	}
}

func TestAllowedByDefault(t *testing.T) {
	p := mustNew(t, Config{})
	for _, s := range []string{
		"8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.255.255", "100.128.0.0",
		"172.15.255.255", "172.32.0.0", "198.17.255.255", "198.20.0.0", "223.255.255.255",
		"2606:4700::1111", "2a00:1450:4001::1", "2001:4860:4860::8888",
		"::ffff:8.8.8.8", // mapped public: normalised, then allowed
		"::8.8.8.8",      // compatible public
	} {
		if v := p.Check(netip.MustParseAddr(s)); v != Allow {
			t.Errorf("Check(%s) = %v, want allow", s, v)
		}
	}
}

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"::ffff:127.0.0.1", "127.0.0.1"},
		{"::127.0.0.1", "127.0.0.1"},
		{"::8.8.8.8", "8.8.8.8"},
		{"::0.0.0.2", "0.0.0.2"},
		{"::1", "::1"},
		{"::", "::"},
		{"fe80::1%eth0", "fe80::1"},
		{"64:ff9b::7f00:1", "64:ff9b::7f00:1"},
		{"8.8.8.8", "8.8.8.8"},
	} {
		if got := Normalize(netip.MustParseAddr(tc.in)).String(); got != tc.want {
			t.Errorf("Normalize(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestPrecedence(t *testing.T) {
	p := mustNew(t, Config{
		Allow:  []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("2001:2::/48"), netip.MustParsePrefix("::ffff:127.0.0.0/104")},
		Deny:   []netip.Prefix{netip.MustParsePrefix("198.18.5.0/24"), netip.MustParsePrefix("9.9.9.0/24")},
		Self:   []netip.Addr{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("203.0.113.9")},
		Listen: []netip.AddrPort{netip.MustParseAddrPort("198.18.0.1:3478"), netip.MustParseAddrPort("[::]:3478")},
	})
	for _, tc := range []struct {
		addr string
		port uint16 // 0: Check, else CheckAddrPort
		want Verdict
	}{
		{"198.18.1.1", 0, Allow},        // allow-list opens benchmarking
		{"::ffff:198.18.1.1", 0, Allow}, // also when mapped
		{"2001:2::5", 0, Allow},
		{"198.18.5.5", 0, Denied},    // deny wins over allow
		{"9.9.9.9", 0, Denied},       // deny closes a public block
		{"127.0.0.1", 0, Allow},      // a mapped allow prefix means IPv4
		{"198.18.0.1", 0, Allow},     // self, opened by the allow-list
		{"198.18.0.1", 50000, Allow}, // another client's allocation
		{"198.18.0.1", 3478, Self},   // the listen port: never
		{"::ffff:198.18.0.1", 3478, Self},
		{"203.0.113.9", 0, Self}, // self, not opened
		{"198.18.1.1", 0, Allow},
		{"198.18.1.1", 3478, Allow}, // not the relay: a peer may run a TURN server
		{"8.8.8.8", 0, Allow},
	} {
		a := netip.MustParseAddr(tc.addr)
		var got Verdict
		if tc.port == 0 {
			got = p.Check(a)
		} else {
			got = p.CheckAddrPort(netip.AddrPortFrom(a, tc.port))
		}
		if got != tc.want {
			t.Errorf("check(%s port %d) = %v, want %v", tc.addr, tc.port, got, tc.want)
		}
	}
	if v := p.CheckAddrPort(netip.MustParseAddrPort("8.8.8.8:0")); v != Invalid {
		t.Errorf("CheckAddrPort(port 0) = %v, want invalid", v)
	}
	if v := p.Check(netip.Addr{}); v != Invalid {
		t.Errorf("Check(zero Addr) = %v, want invalid", v)
	}
}

func TestWildcardListenProtectsSelf(t *testing.T) {
	p := mustNew(t, Config{
		Allow:  []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")},
		Self:   []netip.Addr{netip.MustParseAddr("198.18.0.1")},
		Listen: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:3478")},
	})
	if v := p.CheckAddrPort(netip.MustParseAddrPort("198.18.0.1:3478")); v != Self {
		t.Errorf("own address on the wildcard listen port = %v, want self", v)
	}
	if v := p.CheckAddrPort(netip.MustParseAddrPort("198.18.0.2:3478")); v != Allow {
		t.Errorf("another host's port 3478 = %v, want allow", v)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Allow: []netip.Prefix{{}}}, "allow-peer"},
		{Config{Deny: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/8")}}, "deny-peer 10.0.0.1/8: host bits set; did you mean 10.0.0.0/8?"},
		{Config{Allow: []netip.Prefix{netip.MustParsePrefix("::/64")}}, ""},
		{Config{Allow: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}}, ""},
	} {
		_, err := New(tc.c)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("New(%v) = %v, want nil", tc.c, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("New(%v) = %v, want an error containing %q", tc.c, err, tc.want)
		}
	}
}

func TestVerdictStrings(t *testing.T) {
	var got []string
	for v := Allow; v <= Translation; v++ {
		got = append(got, v.String())
	}
	want := []string{"allow", "invalid", "deny-list", "self", "unspecified", "loopback", "private", "shared",
		"link-local", "multicast", "broadcast", "reserved", "documentation", "benchmarking", "translation"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Verdict strings (-want +got):\n%s", diff)
	}
}

// FuzzCheck: any 16 bytes get a verdict without panicking, and an
// IPv4-mapped address always gets the verdict of its IPv4 address.
func FuzzCheck(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1}, uint16(80))
	f.Add([]byte{0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 127, 0, 0, 1}, uint16(3478))
	f.Add([]byte{0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint16(0))
	f.Add([]byte{8, 8, 8, 8}, uint16(53))
	p := mustNew(f, Config{
		Allow:  []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")},
		Self:   []netip.Addr{netip.MustParseAddr("198.18.0.1")},
		Listen: []netip.AddrPort{netip.MustParseAddrPort("198.18.0.1:3478")},
	})
	f.Fuzz(func(t *testing.T, b []byte, port uint16) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		v := p.CheckAddrPort(netip.AddrPortFrom(a, port))
		if a.Is4() {
			mapped := netip.AddrFrom16(a.As16())
			if w := p.CheckAddrPort(netip.AddrPortFrom(mapped, port)); w != v {
				t.Errorf("CheckAddrPort(%s:%d) = %v, but %v for %s", a, port, v, w, mapped)
			}
		}
		if n := Normalize(a); n.Is4In6() {
			t.Errorf("Normalize(%s) = %s, still IPv4-mapped", a, n)
		}
	})
}
