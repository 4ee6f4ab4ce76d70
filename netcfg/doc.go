// Package netcfg configures the network of a relaybox through netlink:
// links up, VLANs, MTUs, carrier, static addresses and routes, DHCPv4,
// DHCPv6, SLAAC, the resolver's file, the sysctls a relay needs, and which
// link is the relay NIC; it also lists links for the console and reports
// which XDP mode the kernel attached on a link.
//
// The configuration is a [Config], one flag per key (ip, mtu, vlan, dns,
// carrier-timeout, dhcp-timeout; see Config.RegisterFlags), which PID 1
// fills from its config file and the kernel command line (ip=… and
// relaybox.<key>=…). Everything that talks to the kernel goes through a
// [Configurator] built on a *netlink.Handle, so tests run it in a namespace
// of their own (netcfg/nstest, with InNamespace) and PID 1 runs it on
// netlink.NewHandle(). A boot does:
//
//	var cfg netcfg.Config
//	cfg.RegisterFlags(fs)                  // then fs.Set(key, value) per key
//	cfg.RelayLink = "default-route"         // or eth0, or mac:52:54:00:12:34:56
//	cfg.RelayPorts = netcfg.PortRange{First: 49152, Last: 65535}
//	n, err := netcfg.New(h).Configure(ctx, cfg, console.Logf)
//	// err names each link that failed; n.Relay is the relay NIC,
//	// n.Links() the status screen's lines; DHCP renews until ctx ends.
//	mode, err := nc.XDPMode(n.Relay)       // after bpf attached its program
//
// One file per concern: config.go (the keys), ipparam.go (the ip= syntax),
// configure_linux.go (the order of a Configure: plan, carrier, addresses,
// resolver, relay NIC), network.go (what it reports), link_linux.go (up,
// carrier, listing), vlan_linux.go, static_linux.go (addresses and
// routes), lease_linux.go (the renewal loop DHCPv4 and DHCPv6 share),
// dhcp4_linux.go, dhcp6_linux.go, slaac_linux.go (router advertisements),
// sysctl.go (the relay's sysctls and why), resolvelink_linux.go (choosing
// the relay NIC), xdp_linux.go (attached XDP mode).
package netcfg
