package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrDuplicateAddress is wrapped by WaitAddress when IPv6 duplicate address
// detection found another host using the address.
var ErrDuplicateAddress = errors.New("duplicate address")

// ApplyStatic sets s on its link: link up, the address (replaced if present,
// so applying twice changes nothing), and a default route through s.Gateway
// if there is one (replacing any default route of that family in the main
// table). Addresses and routes that s does not name are left alone. It does
// not wait for carrier or for IPv6 duplicate address detection: see
// WaitCarrier and WaitAddress. Setting s.Hostname is the caller's job.
func (c *Configurator) ApplyStatic(s Static) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("apply ip=%s: %w", s, err)
	}
	l, err := c.link(s.Iface)
	if err != nil {
		return fmt.Errorf("apply ip=%s: %w", s, err)
	}
	if err := c.h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set link %s up: %w", s.Iface, err)
	}
	a := s.Addr.Addr()
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(s.Addr.Bits(), a.BitLen())}}
	if err := c.h.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("add address %s to %s: %w", s.Addr, s.Iface, err)
	}
	if !s.Gateway.IsValid() {
		return nil
	}
	route := &netlink.Route{
		LinkIndex: l.Attrs().Index,
		Dst:       &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)},
		Gw:        s.Gateway.AsSlice(),
		// Shows as "proto static" in `ip route`, telling it apart from
		// the kernel's prefix routes and, later, DHCP's.
		Protocol: unix.RTPROT_STATIC,
	}
	if a.Is6() {
		route.Dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	if err := c.h.RouteReplace(route); err != nil {
		return fmt.Errorf("set default route via %s dev %s: %w", s.Gateway, s.Iface, err)
	}
	return nil
}

// WaitAddress waits until addr on the named link can be used as a source
// and bound to, or ctx ends. IPv4 addresses are usable at once. An IPv6
// address is "tentative" while duplicate address detection runs (about a
// second once the link has carrier), and binding it fails with
// EADDRNOTAVAIL until then. If detection finds the address in use, the error
// wraps ErrDuplicateAddress.
func (c *Configurator) WaitAddress(ctx context.Context, name string, addr netip.Addr) error {
	family := netlink.FAMILY_V6
	if addr.Is4() {
		family = netlink.FAMILY_V4
	}
	err := poll(ctx, func() (bool, string, error) {
		l, err := c.link(name)
		if err != nil {
			return false, "", err
		}
		addrs, err := c.addrList(l, family)
		if err != nil {
			return false, "", err
		}
		for _, ad := range addrs {
			if p, ok := prefixOf(ad.IPNet); !ok || p.Addr() != addr {
				continue
			}
			switch {
			case ad.Flags&unix.IFA_F_DADFAILED != 0:
				return false, "", fmt.Errorf("%w: another host on the link already uses it; give this host a different address", ErrDuplicateAddress)
			case ad.Flags&unix.IFA_F_TENTATIVE != 0:
				return false, "still tentative (duplicate address detection has not finished; it needs carrier)", nil
			}
			return true, "", nil
		}
		return false, "still not on the link", nil
	})
	if err != nil {
		return fmt.Errorf("wait for address %s on %s: %w", addr, name, err)
	}
	return nil
}
