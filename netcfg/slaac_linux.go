package netcfg

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// raSysctls are the IPv6 settings of a link that learns from router
// advertisements (SLAAC, or DHCPv6, whose default route and on-link prefix
// come from them). Configure sets them before the link goes up, because the
// kernel solicits routers once, when the link-local address is ready, and
// only if accept_ra allows it then.
func raSysctls(p *linkPlan) []Sysctl {
	auto, dhcp := p.has(MethodAuto6), p.has(MethodDHCP6)
	if !auto && !dhcp {
		return nil
	}
	conf := "net/ipv6/conf/" + p.name + "/"
	t := []Sysctl{
		{conf + "disable_ipv6", "0", false, "IPv6 on, should something have turned it off"},
		{conf + "accept_ra", "2", false,
			"accept router advertisements even when the link forwards: the relay NIC forwards for bpf_fib_lookup, " +
				"and with accept_ra=1 the kernel would ignore them and drop the default route they gave"},
		{conf + "accept_ra_defrtr", "1", false, "the default route from the advertisements"},
		{conf + "accept_ra_pinfo", "1", false, "the on-link prefixes from the advertisements"},
	}
	autoconf := "0"
	if auto {
		autoconf = "1"
	}
	return append(t, Sysctl{conf + "autoconf", autoconf, false,
		"addresses from advertised prefixes with auto6; not with dhcp6 alone, whose addresses are the leased ones"})
}

// slaac waits, up to the DHCP timeout, for a global address from router
// advertisements on the link, soliciting routers at every progress line:
// a link that was up before Configure set accept_ra has sent its
// solicitations already, and a router may advertise only every few
// minutes unasked. The kernel keeps the addresses current afterwards.
func (s *session) slaac(ctx context.Context, p *linkPlan, st *entryState) error {
	if !p.carrier {
		s.n.setProblem(st, "SLAAC: no carrier")
		return fmt.Errorf("%s: SLAAC: %w; the kernel configures the link when carrier comes", p.name, ErrNoCarrier)
	}
	timeout := s.cfg.dhcpTimeout()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	next := start
	var addrs []netip.Prefix
	err := poll(wctx, func() (bool, string, error) {
		if now := time.Now(); !now.Before(next) {
			if now != start {
				s.logf("network: %s: waiting for a router advertisement (%v of %v)", p.name, now.Sub(start).Round(time.Second), timeout)
			}
			next = now.Add(s.c.progressEvery)
			if err := s.solicitRouters(p.index); err != nil {
				s.logf("network: %s: router solicitation: %v", p.name, err)
			}
		}
		var err error
		addrs, err = s.autoconfAddrs(p.name)
		return len(addrs) > 0, "no global IPv6 address from router advertisements", err
	})
	if err != nil {
		s.n.setProblem(st, "SLAAC: no address yet")
		return fmt.Errorf("%s: SLAAC: %w: %v; is a router advertising a prefix with the autonomous flag on this link?", p.name, ErrNoLease, err)
	}
	r := result{addrs: addrs, gateway: s.routerOf(p.index)}
	s.n.set(st, r)
	gw := ""
	if r.gateway.IsValid() {
		gw = " via " + r.gateway.String()
	}
	s.logf("network: %s: SLAAC %v%s", p.name, addrs, gw)
	return nil
}

// autoconfAddrs lists the usable global addresses the kernel made from
// router advertisements on the link.
func (s *session) autoconfAddrs(name string) ([]netip.Prefix, error) {
	l, err := s.c.link(name)
	if err != nil {
		return nil, err
	}
	addrs, err := s.c.addrList(l, netlink.FAMILY_V6)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range addrs {
		p, ok := prefixOf(a.IPNet)
		// Addresses of SLAAC are not permanent and, unlike DHCPv6's,
		// have the prefix's length.
		if ok && p.Addr().IsGlobalUnicast() && p.Bits() < 128 &&
			a.Flags&(unix.IFA_F_PERMANENT|unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 {
			out = append(out, p)
		}
	}
	return out, nil
}

// routerOf is the IPv6 default router of the link, as router
// advertisements set it; invalid without one.
func (s *session) routerOf(index int) netip.Addr {
	routes, err := s.c.h.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{LinkIndex: index, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return netip.Addr{}
	}
	for _, r := range routes {
		if isDefault(r) && r.Gw != nil {
			if gw, ok := netip.AddrFromSlice(r.Gw); ok {
				return gw
			}
		}
	}
	return netip.Addr{}
}

// solicitRouters sends a router solicitation (RFC 4861 4.1) to all
// routers on the link with the given index.
func (s *session) solicitRouters(index int) error {
	return s.c.run(func() error {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		// Neighbour discovery drops what has not a hop limit of 255.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, index); err != nil {
			return err
		}
		allRouters := &unix.SockaddrInet6{Addr: netip.MustParseAddr("ff02::2").As16(), ZoneId: uint32(index)}
		// Type 133, code 0, checksum (the kernel fills it in), reserved.
		return unix.Sendto(fd, []byte{133, 0, 0, 0, 0, 0, 0, 0}, 0, allRouters)
	})
}
