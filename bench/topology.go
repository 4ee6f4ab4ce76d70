package bench

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/relaybox/relaybox/netcfg/nstest"
)

// Addresses of the topology (see the package comment), from the
// benchmarking range 198.18.0.0/15 only.
var (
	ClientIP = netip.MustParseAddr("198.18.0.2")
	RelayIP  = netip.MustParseAddr("198.18.1.2")
	PeerIP   = netip.MustParseAddr("198.18.2.2")

	routerClientIP = netip.MustParseAddr("198.18.0.1")
	routerRelayIP  = netip.MustParseAddr("198.18.1.1")
	routerPeerIP   = netip.MustParseAddr("198.18.2.1")

	// benchRange is what servers must allow as peers.
	benchRange = netip.MustParsePrefix("198.18.0.0/15")
)

// Ports every server uses.
const (
	ListenPort = 3478
	PortMin    = 40000
	PortMax    = 59999
	SinkPort   = 9000
)

// Interface names (each in its own namespace).
const (
	clientIface = "c0" // client's, to the router
	relayIface  = "r0" // the relay's one NIC
	peerIface   = "p0"
	wireIface   = "rr" // the router's end of the relay's link
)

// Topology is the benchmark's namespaces and links.
type Topology struct {
	Client, Router, Relay, Peer *nstest.NS
	// RelayMAC is r0's address, WireMAC rr's.
	RelayMAC, WireMAC net.HardwareAddr
	// RelayIndex is r0's ifindex in the relay namespace, WireIndex rr's
	// in the router's.
	RelayIndex, WireIndex int
	// Wire is the XDP program on rr.
	Wire *Wire
	// RelayNetlink is a netlink handle in the relay's namespace.
	RelayNetlink *netlink.Handle
}

// Listen is where every server serves.
func (t *Topology) Listen() netip.AddrPort { return netip.AddrPortFrom(RelayIP, ListenPort) }

// Sink is the peer address flows are bound to.
func (t *Topology) Sink() netip.AddrPort { return netip.AddrPortFrom(PeerIP, SinkPort) }

// NewTopology makes the namespaces, links, addresses and routes, and puts
// the wire program on rr. h's cleanup removes them.
func NewTopology(h *harness) (t *Topology, err error) {
	err = catch(func() {
		t = &Topology{Client: nstest.New(h), Router: nstest.New(h), Relay: nstest.New(h), Peer: nstest.New(h)}
		links := []struct {
			ns    *nstest.NS
			iface string
			addr  netip.Addr
			rIf   string
			rAddr netip.Addr
		}{
			{t.Client, clientIface, ClientIP, "rc", routerClientIP},
			{t.Relay, relayIface, RelayIP, wireIface, routerRelayIP},
			{t.Peer, peerIface, PeerIP, "rp", routerPeerIP},
		}
		for _, l := range links {
			nstest.Veth(h, l.ns, l.iface, t.Router, l.rIf)
			l.ns.MustRun(h, "ip", "addr", "add", l.addr.String()+"/24", "dev", l.iface)
			t.Router.MustRun(h, "ip", "addr", "add", l.rAddr.String()+"/24", "dev", l.rIf)
			l.ns.MustRun(h, "ip", "route", "add", "default", "via", l.rAddr.String())
		}
		t.Router.Sysctl(h, "net/ipv4/ip_forward", "1")
		// The XDP program relays through bpf_fib_lookup, which refuses
		// on a NIC with forwarding off; the appliance turns it on too.
		t.Relay.Sysctl(h, "net/ipv4/ip_forward", "1")
		// The relay's NIC as a server's: see the package comment.
		t.Relay.PollLikeANIC(h, relayIface, relayGROFlush)
		t.RelayNetlink = t.Relay.Netlink(h)
	})
	if err != nil {
		return nil, fmt.Errorf("benchmark topology: %w", err)
	}
	if t.RelayMAC, t.RelayIndex, err = linkInfo(t.Relay, relayIface); err != nil {
		return nil, err
	}
	if t.WireMAC, t.WireIndex, err = linkInfo(t.Router, wireIface); err != nil {
		return nil, err
	}
	if t.Wire, err = attachWire(t.Router, t.WireIndex); err != nil {
		return nil, err
	}
	h.Cleanup(func() { t.Wire.Close() })
	return t, nil
}

// relayGROFlush is how long the relay's NIC holds what GRO joined for
// later polls to join more to: a server NIC's interrupt coalescing, which
// a veth lacks, is of this order.
const relayGROFlush = 50 * time.Microsecond

// ThreadedNAPI runs the relay NIC's receive processing in a kernel thread
// of its own (on), as a busy NIC's polls are, or back in the softirq of
// whoever sends to it (off), which the in-kernel generator needs: the
// path's cost must be charged to its thread.
func (t *Topology) ThreadedNAPI(on bool) error { return t.Relay.ThreadedNAPI(relayIface, on) }

// linkInfo returns the MAC address and ifindex of iface in ns.
func linkInfo(ns *nstest.NS, iface string) (mac net.HardwareAddr, index int, err error) {
	err = ns.Do(func() error {
		i, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		mac, index = i.HardwareAddr, i.Index
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("interface %s in %s: %w", iface, ns.Name, err)
	}
	return mac, index, nil
}
