package netcfg

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoDefaultRoute is wrapped by ResolveLink's error for default-route
// when the main table has no default route of either family.
var ErrNoDefaultRoute = errors.New("no default route")

// ResolveLink returns the name of the link selector chooses:
//
//   - a name, "eth0": that link, which must exist;
//   - a MAC address, "mac:52:54:00:12:34:56" or bare "52:54:00:12:34:56":
//     the link with that address; VLANs share their parent's MAC, so the
//     link that is not a VLAN is taken, and more than one left is an error;
//   - "default-route": the link of the IPv4 default route in the main
//     table with the lowest metric, or failing one, the IPv6 default route's.
//
// A MAC survives a change of NIC naming (eth0 becoming enp3s0 with another
// kernel); default-route follows DHCP to whichever NIC got the lease.
func (c *Configurator) ResolveLink(selector string) (string, error) {
	sel, err := parseSelector(selector)
	if err != nil {
		return "", err
	}
	switch {
	case sel.name != "":
		l, err := c.link(sel.name)
		if err != nil {
			return "", err
		}
		return l.Attrs().Name, nil
	case sel.mac != nil:
		return c.linkByMAC(sel)
	}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		name, ok, err := c.defaultRouteLink(family)
		if err != nil || ok {
			return name, err
		}
	}
	return "", fmt.Errorf("%s: %w of IPv4 or IPv6 in the main table; configure one (ip= with a gateway, or DHCP), or name the relay NIC (links present: %s)",
		DefaultRoute, ErrNoDefaultRoute, c.linkNames())
}

func (c *Configurator) linkByMAC(sel selector) (string, error) {
	links, err := c.linkList()
	if err != nil {
		return "", err
	}
	var match []netlink.Link
	for _, l := range links {
		if bytes.Equal(l.Attrs().HardwareAddr, sel.mac) {
			match = append(match, l)
		}
	}
	if len(match) > 1 {
		var phys []netlink.Link
		for _, l := range match {
			if l.Type() != "vlan" {
				phys = append(phys, l)
			}
		}
		if len(phys) > 0 {
			match = phys
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("%w with MAC %s (links present: %s)", ErrNoLink, sel.mac, c.linkNames())
	case 1:
		return match[0].Attrs().Name, nil
	}
	names := make([]string, len(match))
	for i, l := range match {
		names[i] = l.Attrs().Name
	}
	return "", fmt.Errorf("MAC %s is on %s; name the relay NIC instead", sel.mac, strings.Join(names, ", "))
}

// defaultRouteLink finds the link of the default route of family with the
// lowest metric; ok is false when there is none.
func (c *Configurator) defaultRouteLink(family int) (name string, ok bool, err error) {
	routes, err := c.h.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return "", false, fmt.Errorf("%s: list routes: %w", DefaultRoute, err)
	}
	best := -1
	var bestRoute netlink.Route
	for _, r := range routes {
		if !isDefault(r) || r.Type != unix.RTN_UNICAST {
			continue
		}
		index := r.LinkIndex
		if index == 0 && len(r.MultiPath) > 0 {
			index = r.MultiPath[0].LinkIndex
		}
		if index == 0 {
			continue
		}
		if best < 0 || r.Priority < bestRoute.Priority {
			best, bestRoute = index, r
		}
	}
	if best < 0 {
		return "", false, nil
	}
	l, err := c.h.LinkByIndex(best)
	if err != nil {
		return "", false, fmt.Errorf("%s: link %d: %w", DefaultRoute, best, err)
	}
	return l.Attrs().Name, true, nil
}

// isDefault reports whether r is a default route (destination /0).
func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}
