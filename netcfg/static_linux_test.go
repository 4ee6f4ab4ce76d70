package netcfg

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// defaultRoutes lists the default routes of family in the main table as
// "via <gw> dev <index> proto <p>", so a duplicate shows.
func defaultRoutes(t *testing.T, h *netlink.Handle, family int) []string {
	t.Helper()
	routes, err := h.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatalf("list routes: %v", err)
	}
	var out []string
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		out = append(out, "via "+r.Gw.String()+" dev "+strings.TrimSpace(linkName(t, h, r.LinkIndex))+" proto "+r.Protocol.String())
	}
	return out
}

func linkName(t *testing.T, h *netlink.Handle, index int) string {
	l, err := h.LinkByIndex(index)
	if err != nil {
		t.Fatalf("link %d: %v", index, err)
	}
	return l.Attrs().Name
}

// addrsOf lists the addresses of family on dev.
func addrsOf(t *testing.T, h *netlink.Handle, dev string, family int) []string {
	t.Helper()
	l, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := h.AddrList(l, family)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p.String())
		}
	}
	return out
}

func TestApplyStaticIPv4(t *testing.T) {
	a, b, h, nc := pair(t)
	// b is the gateway, and also owns an address off a's link: reaching it
	// and hearing back needs a's default route.
	b.MustRun(t, "ip", "addr", "add", "198.18.0.1/24", "dev", "b0")
	b.MustRun(t, "ip", "addr", "add", "198.19.0.1/32", "dev", "b0")

	s, err := ParseIP("198.18.0.2::198.18.0.1:255.255.255.0::a0:off")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second pass must change nothing
		if err := nc.ApplyStatic(s); err != nil {
			t.Fatalf("pass %d: ApplyStatic(%v) = %v", i, s, err)
		}
		if got, want := addrsOf(t, h, "a0", netlink.FAMILY_V4), []string{"198.18.0.2/24"}; !cmp.Equal(got, want) {
			t.Errorf("pass %d: addresses on a0 = %q, want %q", i, got, want)
		}
		if got, want := defaultRoutes(t, h, netlink.FAMILY_V4), []string{"via 198.18.0.1 dev a0 proto static"}; !cmp.Equal(got, want) {
			t.Errorf("pass %d: default routes = %q, want %q", i, got, want)
		}
	}
	if err := nc.WaitAddress(context.Background(), "a0", s.Addr.Addr()); err != nil {
		t.Errorf("WaitAddress(%s) = %v, want nil at once for IPv4", s.Addr.Addr(), err)
	}
	udpEcho(t, a, netip.MustParseAddrPort("198.18.0.2:3478"), b, netip.MustParseAddr("198.19.0.1"))

	// A new gateway replaces the default route rather than adding one.
	b.MustRun(t, "ip", "addr", "add", "198.18.0.254/24", "dev", "b0")
	s.Gateway = netip.MustParseAddr("198.18.0.254")
	if err := nc.ApplyStatic(s); err != nil {
		t.Fatalf("ApplyStatic(%v) = %v", s, err)
	}
	if got, want := defaultRoutes(t, h, netlink.FAMILY_V4), []string{"via 198.18.0.254 dev a0 proto static"}; !cmp.Equal(got, want) {
		t.Errorf("after a gateway change: default routes = %q, want %q", got, want)
	}
	udpEcho(t, a, netip.MustParseAddrPort("198.18.0.2:3478"), b, netip.MustParseAddr("198.19.0.1"))
}

func TestApplyStaticIPv6(t *testing.T) {
	a, b, h, nc := pair(t)
	fastDAD(t, a, "a0")
	b.MustRun(t, "ip", "addr", "add", "2001:2::1/64", "dev", "b0", "nodad")
	b.MustRun(t, "ip", "addr", "add", "2001:2:0:1::1/128", "dev", "b0", "nodad")

	s, err := ParseIP("[2001:2::2]::[2001:2::1]:64::a0:off")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := nc.ApplyStatic(s); err != nil {
			t.Fatalf("pass %d: ApplyStatic(%v) = %v", i, s, err)
		}
		if got, want := addrsOf(t, h, "a0", netlink.FAMILY_V6), []string{"2001:2::2/64"}; !cmp.Equal(got, want) {
			t.Errorf("pass %d: addresses on a0 = %q, want %q", i, got, want)
		}
		if got, want := defaultRoutes(t, h, netlink.FAMILY_V6), []string{"via 2001:2::1 dev a0 proto static"}; !cmp.Equal(got, want) {
			t.Errorf("pass %d: default routes = %q, want %q", i, got, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := nc.WaitAddress(ctx, "a0", s.Addr.Addr()); err != nil {
		t.Fatalf("WaitAddress = %v", err)
	}
	udpEcho(t, a, netip.MustParseAddrPort("[2001:2::2]:3478"), b, netip.MustParseAddr("2001:2:0:1::1"))
}

func TestWaitAddressDuplicate(t *testing.T) {
	a, b, _, nc := pair(t)
	fastDAD(t, a, "a0")
	b.MustRun(t, "ip", "addr", "add", "2001:2::2/64", "dev", "b0", "nodad")
	s := Static{Iface: "a0", Addr: netip.MustParsePrefix("2001:2::2/64")}
	if err := nc.ApplyStatic(s); err != nil {
		t.Fatalf("ApplyStatic(%v) = %v", s, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := nc.WaitAddress(ctx, "a0", s.Addr.Addr())
	if !errors.Is(err, ErrDuplicateAddress) || !strings.Contains(err.Error(), "2001:2::2 on a0") {
		t.Errorf("WaitAddress with the address taken = %v, want ErrDuplicateAddress naming 2001:2::2 on a0", err)
	}
}

func TestWaitAddressTimeout(t *testing.T) {
	a, _, _, nc := pair(t)
	// Duplicate address detection that takes ten seconds.
	a.Sysctl(t, "net/ipv6/neigh/a0/retrans_time_ms", "10000")
	s := Static{Iface: "a0", Addr: netip.MustParsePrefix("2001:2::2/64")}
	if err := nc.ApplyStatic(s); err != nil {
		t.Fatalf("ApplyStatic(%v) = %v", s, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := nc.WaitAddress(ctx, "a0", s.Addr.Addr())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "tentative") {
		t.Errorf("WaitAddress during a slow DAD = %v, want a deadline error saying the address is tentative", err)
	}
}

func TestApplyStaticErrors(t *testing.T) {
	_, _, _, nc := pair(t)
	for _, tt := range []struct {
		s      Static
		is     error
		substr []string
	}{
		{
			s:      Static{Iface: "eth9", Addr: netip.MustParsePrefix("198.18.0.2/24")},
			is:     ErrNoLink,
			substr: []string{`no such link "eth9"`, "links present: a0"},
		},
		{
			s:      Static{Iface: "a0", Addr: netip.MustParsePrefix("198.18.0.2/24"), Gateway: netip.MustParseAddr("198.19.0.1")},
			substr: []string{"gw-ip 198.19.0.1", "not on the link"},
		},
		{
			s:      Static{Addr: netip.MustParsePrefix("198.18.0.2/24")},
			substr: []string{"no device"},
		},
	} {
		err := nc.ApplyStatic(tt.s)
		if err == nil {
			t.Errorf("ApplyStatic(%+v) = nil, want an error", tt.s)
			continue
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("ApplyStatic(%+v) = %v, want an error wrapping %v", tt.s, err, tt.is)
		}
		for _, sub := range tt.substr {
			if !strings.Contains(err.Error(), sub) {
				t.Errorf("ApplyStatic(%+v) = %q, want it to contain %q", tt.s, err, sub)
			}
		}
	}
}
