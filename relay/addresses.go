package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// DefaultRelayAddresses finds the relay addresses for listen addresses when
// none are configured: at most one IPv4 and one IPv6 address, since the TURN
// core makes each allocation on one address per family.
//
//   - A listen address that is not a wildcard is the relay address of its
//     family, and the interface that holds it gives the other family's: its
//     first address of that family that is neither link-local nor multicast.
//   - For a wildcard listen (0.0.0.0, [::]) each family's address is the one
//     the host would send from towards the Internet (its default route's
//     source), else the first global unicast address of an interface that is
//     up, in interface order. Nothing is sent to find it.
//
// Addresses that are not the host's own cannot be relay addresses (sockets
// are bound to them): a relay behind 1:1 NAT is not supported yet.
func DefaultRelayAddresses(listen []netip.AddrPort) ([]netip.Addr, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("relay-address: list interfaces: %w", err)
	}
	type ifaddrs struct {
		up    bool
		addrs []netip.Addr
	}
	all := make([]ifaddrs, 0, len(ifaces))
	for _, ifc := range ifaces {
		as, err := ifc.Addrs()
		if err != nil {
			continue
		}
		var addrs []netip.Addr
		for _, a := range as {
			if p, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(p.IP); ok {
					addrs = append(addrs, ip.Unmap())
				}
			}
		}
		all = append(all, ifaddrs{up: ifc.Flags&net.FlagUp != 0, addrs: addrs})
	}

	var found [2]netip.Addr // [0] IPv4, [1] IPv6
	take := func(a netip.Addr) {
		if i := familyIndex(a); !found[i].IsValid() {
			found[i] = a
		}
	}
	usable := func(a netip.Addr) bool {
		return a.IsValid() && !a.IsLinkLocalUnicast() && !a.IsMulticast() && !a.IsUnspecified()
	}
	// Specific listen addresses first: they say which interface is meant.
	for _, l := range listen {
		if l.Addr().IsUnspecified() {
			continue
		}
		take(l.Addr().WithZone(""))
		for _, ifc := range all {
			for _, a := range ifc.addrs {
				if a == l.Addr().WithZone("") {
					for _, b := range ifc.addrs {
						if usable(b) {
							take(b)
						}
					}
				}
			}
		}
	}
	for _, l := range listen {
		if !l.Addr().IsUnspecified() {
			continue
		}
		i := familyIndex(l.Addr())
		if found[i].IsValid() {
			continue
		}
		if a, ok := routeSource(l.Addr().Is4()); ok {
			found[i] = a
			continue
		}
		for _, ifc := range all {
			for _, a := range ifc.addrs {
				if ifc.up && familyIndex(a) == i && a.IsGlobalUnicast() && !a.IsLoopback() {
					take(a)
				}
			}
		}
	}
	var out []netip.Addr
	for _, a := range found {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("relay-address: none given, and this host has no address to make allocations on for the listen addresses; give --relay-address with the host's public IPv4 and/or IPv6 address")
	}
	return out, nil
}

// routeSource is the address the host sends from towards the Internet: a
// UDP socket connected to a documentation address takes its source from the
// routing table, without sending anything.
func routeSource(v4 bool) (netip.Addr, bool) {
	network, dst := "udp4", "192.0.2.1:3478"
	if !v4 {
		network, dst = "udp6", "[2001:db8::1]:3478"
	}
	c, err := net.Dial(network, dst)
	if err != nil {
		return netip.Addr{}, false
	}
	defer c.Close()
	a := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	if !a.IsGlobalUnicast() || a.IsLoopback() {
		return netip.Addr{}, false
	}
	return a, true
}

func familyIndex(a netip.Addr) int {
	if a.Unmap().Is4() {
		return 0
	}
	return 1
}
