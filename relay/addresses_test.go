package relay

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/relaybox/relaybox/netcfg/nstest"
)

// TestDefaultRelayAddresses runs the default in a namespace with two
// interfaces, one with a default route.
func TestDefaultRelayAddresses(t *testing.T) {
	a, b := nstest.New(t), nstest.New(t)
	nstest.Veth(t, a, "e0", b, "x0")
	nstest.Veth(t, a, "e1", b, "x1")
	for _, args := range [][]string{
		{"addr", "add", "198.18.0.1/24", "dev", "e0"},
		{"-6", "addr", "add", "2001:2:0:1::1/64", "dev", "e0", "nodad"},
		{"addr", "add", "198.19.0.1/24", "dev", "e1"},
		{"-6", "addr", "add", "2001:2:0:2::1/64", "dev", "e1", "nodad"},
		{"route", "add", "default", "via", "198.19.0.2"},
		{"-6", "route", "add", "default", "via", "2001:2:0:2::2"},
	} {
		a.MustRun(t, "ip", args...)
	}
	for _, tc := range []struct {
		listen []netip.AddrPort
		want   []netip.Addr
	}{
		// A specific address: it, and its interface's other family.
		{addrs("198.18.0.1:3478"), ips("198.18.0.1", "2001:2:0:1::1")},
		{addrs("[2001:2:0:2::1]:3478"), ips("198.19.0.1", "2001:2:0:2::1")},
		// Wildcards: the default routes' sources.
		{addrs("0.0.0.0:3478"), ips("198.19.0.1")},
		{addrs("0.0.0.0:3478", "[::]:3478"), ips("198.19.0.1", "2001:2:0:2::1")},
		// Loopback listens on lo.
		{addrs("127.0.0.1:3478"), ips("127.0.0.1", "::1")},
	} {
		var got []netip.Addr
		err := a.Do(func() error {
			var err error
			got, err = DefaultRelayAddresses(tc.listen)
			return err
		})
		if err != nil {
			t.Errorf("DefaultRelayAddresses(%v): %v", tc.listen, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
			t.Errorf("DefaultRelayAddresses(%v) (-want +got):\n%s", tc.listen, diff)
		}
	}

	// Without a default route, a wildcard takes the first global address.
	a.MustRun(t, "ip", "route", "del", "default")
	var got []netip.Addr
	a.Do(func() error { got, _ = DefaultRelayAddresses(addrs("0.0.0.0:3478")); return nil })
	if len(got) != 1 || got[0] != netip.MustParseAddr("198.18.0.1") {
		t.Errorf("without a default route: %v, want [198.18.0.1]", got)
	}
	// A namespace with only loopback has nothing for a wildcard.
	c := nstest.New(t)
	var err error
	c.Do(func() error { _, err = DefaultRelayAddresses(addrs("0.0.0.0:3478")); return nil })
	if err == nil {
		t.Error("DefaultRelayAddresses with only loopback: nil error, want one that says to give --relay-address")
	}
}

func ips(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, v := range s {
		out = append(out, netip.MustParseAddr(v))
	}
	return out
}
