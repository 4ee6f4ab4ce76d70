package netcfg

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	// dhcpRetransmit is the first retransmission timeout of an exchange,
	// doubling after (RFC 2131 says 4s; a booting box wants its address
	// sooner).
	dhcpRetransmit = 2 * time.Second
	// dhcpMetricBase is the metric of DHCPv4 routes, plus the link's
	// index so that two DHCP links keep a default route each (the same
	// metric would make one replace the other). Static routes have
	// metric 0 and win.
	dhcpMetricBase = 100
)

// lease4 is a DHCPv4 lease and what it means for the link.
type lease4 struct {
	raw     *nclient4.Lease
	addr    netip.Prefix
	routes  []route4
	gateway netip.Addr // of the default route; invalid without one
	dns     []netip.Addr
	search  []string
	mtu     int
	t       leaseTiming
}

func (l *lease4) timing() leaseTiming { return l.t }
func (l *lease4) String() string {
	if l.gateway.IsValid() {
		return fmt.Sprintf("%s via %s", l.addr, l.gateway)
	}
	return l.addr.String()
}

type route4 struct {
	dst netip.Prefix
	gw  netip.Addr // invalid: on the link
}

// dhcp4 is DHCPv4 on one link.
type dhcp4 struct {
	s        *session
	p        *linkPlan
	st       *entryState
	hostname string
}

// dhcp4 runs DHCPv4 on the link: see runDHCP.
func (s *session) dhcp4(ctx context.Context, p *linkPlan, st *entryState, e IPConfig) error {
	proto := &dhcp4{s: s, p: p, st: st, hostname: e.Hostname}
	return s.runDHCP(ctx, &dhcpClient{s: s, p: p, st: st, what: "DHCPv4", proto: proto})
}

// exchange runs a DHCPv4 exchange bounded by timeout. The socket lives for
// the exchange only: a packet socket sees every IPv4 packet of the link,
// which on a relay NIC is a lot to copy for nothing. Rebinding is a new
// exchange, since nclient4 cannot broadcast a REQUEST to any server.
func (d *dhcp4) exchange(ctx context.Context, timeout time.Duration, old lease, rebind bool) (lease, error) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var client *nclient4.Client
	err := d.s.c.run(func() (err error) {
		client, err = nclient4.New(d.p.name, nclient4.WithTimeout(dhcpRetransmit), nclient4.WithRetry(-1))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open a DHCP socket on %s: %w", d.p.name, err)
	}
	defer client.Close()
	mods := []dhcpv4.Modifier{dhcpv4.WithRequestedOptions(
		dhcpv4.OptionInterfaceMTU, dhcpv4.OptionDNSDomainSearchList, dhcpv4.OptionClasslessStaticRoute,
		dhcpv4.OptionIPAddressLeaseTime, dhcpv4.OptionRenewTimeValue, dhcpv4.OptionRebindingTimeValue,
	)}
	if d.hostname != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(d.hostname)))
	}
	var raw *nclient4.Lease
	if old != nil && !rebind {
		raw, err = client.Renew(tctx, old.(*lease4).raw, mods...)
	} else {
		raw, err = client.Request(tctx, mods...)
	}
	var nak *nclient4.ErrNak
	switch {
	case errors.As(err, &nak):
		return nil, fmt.Errorf("%w: %v", errRefused, err)
	case err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		if old != nil && !rebind {
			return nil, fmt.Errorf("%w after %v: the DHCP server did not answer", ErrNoLease, timeout)
		}
		return nil, fmt.Errorf("%w after %v: no DHCP server answered", ErrNoLease, timeout)
	case err != nil:
		return nil, err
	}
	return parseLease4(raw)
}

// parseLease4 reads what relaybox uses from an ACK.
func parseLease4(raw *nclient4.Lease) (*lease4, error) {
	ack := raw.ACK
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || !ip.IsGlobalUnicast() {
		return nil, fmt.Errorf("the server offered %v, not a unicast IPv4 address", ack.YourIPAddr)
	}
	bits := 32
	if m := ack.SubnetMask(); m != nil {
		if ones, size := m.Size(); size == 32 && ones > 0 {
			bits = ones
		}
	}
	l := &lease4{raw: raw, addr: netip.PrefixFrom(ip, bits)}
	l.t = leaseTiming{start: raw.CreationTime, length: ack.IPAddressLeaseTime(time.Hour)}
	if l.t.length >= math.MaxUint32*time.Second {
		l.t.length = forever
	} else {
		l.t.t1 = ack.IPAddressRenewalTime(l.t.length / 2)
		l.t.t2 = ack.IPAddressRebindingTime(l.t.length / 8 * 7)
		if l.t.t1 <= 0 || l.t.t1 > l.t.length {
			l.t.t1 = l.t.length / 2
		}
		if l.t.t2 < l.t.t1 || l.t.t2 > l.t.length {
			l.t.t2 = l.t.length / 8 * 7
		}
	}
	// RFC 3442: with classless routes, the router option is ignored.
	if routes := ack.ClasslessStaticRoute(); len(routes) > 0 {
		for _, r := range routes {
			dst, ok := prefixOf(r.Dest)
			if !ok {
				continue
			}
			gw, _ := netip.AddrFromSlice(r.Router.To4())
			if gw.IsUnspecified() {
				gw = netip.Addr{}
			}
			l.routes = append(l.routes, route4{dst.Masked(), gw})
		}
	} else if routers := ack.Router(); len(routers) > 0 {
		if gw, ok := netip.AddrFromSlice(routers[0].To4()); ok && gw.IsGlobalUnicast() {
			l.routes = append(l.routes, route4{netip.PrefixFrom(netip.IPv4Unspecified(), 0), gw})
		}
	}
	for _, r := range l.routes {
		if r.dst.Bits() == 0 {
			l.gateway = r.gw
		}
	}
	for _, d := range ack.DNS() {
		if a, ok := netip.AddrFromSlice(d.To4()); ok && checkDNS(a) == nil && !slices.Contains(l.dns, a) {
			l.dns = append(l.dns, a)
		}
	}
	if labels := ack.DomainSearch(); labels != nil {
		l.search = append(l.search, labels.Labels...)
	} else if d := ack.DomainName(); d != "" {
		l.search = []string{d}
	}
	if b := ack.Options.Get(dhcpv4.OptionInterfaceMTU); len(b) == 2 {
		l.mtu = int(binary.BigEndian.Uint16(b))
	}
	return l, nil
}

// apply puts the lease on the link: the address with the lease's lifetime
// (so the kernel removes it should this client die), the routes, the MTU
// unless the mtu key names the link.
func (d *dhcp4) apply(ln, oldl lease) error {
	s, name := d.s, d.p.name
	l := ln.(*lease4)
	link, err := s.c.link(name)
	if err != nil {
		return err
	}
	idx := link.Attrs().Index
	addr := &netlink.Addr{IPNet: ipNet(l.addr)}
	if l.t.length != forever {
		left := max(int(time.Until(l.t.end()).Seconds()), 1)
		addr.ValidLft, addr.PreferedLft = left, left
	}
	if err := s.c.h.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("add address %s to %s: %w", l.addr, name, err)
	}
	var old *lease4
	if oldl != nil {
		old = oldl.(*lease4)
		if old.addr != l.addr {
			_ = s.c.h.AddrDel(link, &netlink.Addr{IPNet: ipNet(old.addr)})
		}
	}
	metric := dhcpMetricBase + idx
	for _, r := range l.routes {
		if r.gw.IsValid() && !l.addr.Masked().Contains(r.gw) {
			// A gateway off the leased subnet (a /32 lease, as some
			// clouds give) is reached on the link.
			onLink := route4{dst: netip.PrefixFrom(r.gw, 32)}
			if err := s.c.h.RouteReplace(onLink.netlink(idx, metric, l.addr.Addr())); err != nil {
				return fmt.Errorf("route to gateway %s dev %s: %w", r.gw, name, err)
			}
		}
		if err := s.c.h.RouteReplace(r.netlink(idx, metric, l.addr.Addr())); err != nil {
			return fmt.Errorf("route %s via %s dev %s: %w", r.dst, r.gw, name, err)
		}
	}
	if old != nil {
		for _, r := range old.routes {
			if !slices.Contains(l.routes, r) {
				_ = s.c.h.RouteDel(r.netlink(idx, metric, old.addr.Addr()))
			}
		}
	}
	if l.mtu >= minMTU && l.mtu <= maxMTU && !s.mtuKeyed(name) && link.Attrs().MTU != l.mtu {
		if err := s.c.h.LinkSetMTU(link, l.mtu); err != nil {
			s.logf("network: %s: MTU %d from DHCP: %v", name, l.mtu, err)
		}
	}
	s.n.set(d.st, result{addrs: []netip.Prefix{l.addr}, gateway: l.gateway, expiry: l.t.end(), dns: l.dns, search: l.search})
	return nil
}

// drop removes the lease's address and routes.
func (d *dhcp4) drop(ln lease) {
	l := ln.(*lease4)
	link, err := d.s.c.link(d.p.name)
	if err != nil {
		return
	}
	idx := link.Attrs().Index
	for _, r := range l.routes {
		_ = d.s.c.h.RouteDel(r.netlink(idx, dhcpMetricBase+idx, l.addr.Addr()))
	}
	_ = d.s.c.h.AddrDel(link, &netlink.Addr{IPNet: ipNet(l.addr)})
}

func (r route4) netlink(idx, metric int, src netip.Addr) *netlink.Route {
	rt := &netlink.Route{LinkIndex: idx, Dst: ipNet(r.dst), Protocol: unix.RTPROT_DHCP, Priority: metric, Src: src.AsSlice()}
	if r.gw.IsValid() {
		rt.Gw = r.gw.AsSlice()
	} else {
		rt.Scope = netlink.SCOPE_LINK
	}
	return rt
}

// mtuKeyed reports whether the mtu key sets the MTU of the link, which then
// wins over DHCP's.
func (s *session) mtuKeyed(name string) bool {
	return slices.ContainsFunc(s.cfg.MTU, func(m MTU) bool { return m.Link == name })
}

// ipNet converts a prefix to netlink's form, keeping the host part.
func ipNet(p netip.Prefix) *net.IPNet {
	a := p.Addr()
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), a.BitLen())}
}
