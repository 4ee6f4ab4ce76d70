// Package netcfg configures the network interfaces of a relaybox through
// netlink: it parses the kernel's ip= parameter, raises links, waits for
// carrier, sets static addresses and the default route, lists links for the
// console and reports which XDP mode the kernel attached on a link.
//
// Everything that talks to the kernel goes through a [Configurator] built on
// a *netlink.Handle, so tests run it in a namespace of their own
// (netcfg/nstest) and PID 1 runs it on netlink.NewHandle(). A boot does, per
// relay NIC:
//
//	s, err := netcfg.ParseIP(value)        // from ip=… on the kernel command line
//	nc := netcfg.New(h)
//	err = nc.ApplyStatic(s)                // link up, address, default route
//	err = nc.WaitCarrier(ctx, s.Iface)     // bounded by ctx
//	err = nc.WaitAddress(ctx, s.Iface, s.Addr.Addr()) // IPv6: until DAD is done
//	mode, err := nc.XDPMode(s.Iface)       // after bpf attached its program
//
// One file per concern: ipparam.go (the ip= syntax and [Static]),
// configurator_linux.go (the handle and link lookup), link_linux.go (up,
// carrier, listing), static_linux.go (addresses and routes), xdp_linux.go
// (attached XDP mode). DHCPv4 and IPv6 autoconfiguration will sit beside
// static_linux.go and reuse the same Configurator.
package netcfg
