package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link describes one network interface, for the console and for choosing the
// relay NIC.
type Link struct {
	Name      string
	Index     int
	Kind      string // "device" for a NIC, or "veth", "bridge", "tun", …
	MAC       net.HardwareAddr
	MTU       int
	Up        bool   // administratively up
	Carrier   bool   // the lower layer is up: cable in, peer present
	OperState string // as /sys/class/net/<name>/operstate: up, down, lowerlayerdown, dormant, …
	XDP       string // the attached XDP mode, as XDPMode reports it
	Addrs     []netip.Prefix
}

// String is one console line:
//
//	eth0 device 52:54:00:12:34:56 mtu 1500 up xdp=native 198.18.0.2/24 fe80::5054:ff:fe12:3456/64
func (l Link) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", l.Name, l.Kind)
	if len(l.MAC) > 0 {
		fmt.Fprintf(&b, " %s", l.MAC)
	}
	fmt.Fprintf(&b, " mtu %d %s xdp=%s", l.MTU, l.OperState, l.XDP)
	for _, a := range l.Addrs {
		fmt.Fprintf(&b, " %s", a)
	}
	return b.String()
}

// LinkUp sets the link administratively up. It does not wait for carrier.
func (c *Configurator) LinkUp(name string) error {
	l, err := c.link(name)
	if err != nil {
		return fmt.Errorf("set link up: %w", err)
	}
	if err := c.h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set link %s up: %w", name, err)
	}
	return nil
}

// WaitCarrier waits until the link has carrier and is up, or ctx ends. A
// link that does not exist yet is waited for too: at boot a NIC appears only
// once its driver has probed, which may be after init asked for it. On ctx's
// end the error names the link and the state last seen, and wraps ctx.Err().
func (c *Configurator) WaitCarrier(ctx context.Context, name string) error {
	err := poll(ctx, func() (bool, string, error) {
		l, err := c.h.LinkByName(name)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return false, fmt.Sprintf("still no link %q (links present: %s)", name, c.linkNames()), nil
			}
			return false, "", err
		}
		a := l.Attrs()
		if hasCarrier(a) {
			return true, "", nil
		}
		state := fmt.Sprintf("still no carrier (operstate %s", operState(a.OperState))
		if a.Flags&net.FlagUp == 0 {
			state += ", link administratively down: bring it up first"
		}
		return false, state + ")", nil
	})
	if err != nil {
		return fmt.Errorf("wait for carrier on %s: %w", name, err)
	}
	return nil
}

// hasCarrier reports whether the link can pass traffic. IFF_LOWER_UP is the
// carrier; operstate must be up as well, except for drivers that never set
// it (they report unknown, as tun and dummy do). Dormant (for example 802.1X
// still authenticating) is not ready.
func hasCarrier(a *netlink.LinkAttrs) bool {
	return a.Flags&net.FlagUp != 0 && a.RawFlags&unix.IFF_LOWER_UP != 0 &&
		(a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown)
}

// operState names an operstate the way /sys/class/net/<name>/operstate and
// `ip link` do, which is what an operator compares against.
func operState(s netlink.LinkOperState) string {
	switch s {
	case netlink.OperNotPresent:
		return "notpresent"
	case netlink.OperDown:
		return "down"
	case netlink.OperLowerLayerDown:
		return "lowerlayerdown"
	case netlink.OperTesting:
		return "testing"
	case netlink.OperDormant:
		return "dormant"
	case netlink.OperUp:
		return "up"
	}
	return "unknown"
}

// Links lists every link except loopback, in index order, with its
// addresses (link-local ones included).
func (c *Configurator) Links() ([]Link, error) {
	links, err := c.linkList()
	if err != nil {
		return nil, err
	}
	addrs, err := c.addrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	byIndex := map[int][]netip.Prefix{}
	for _, ad := range addrs {
		if p, ok := prefixOf(ad.IPNet); ok {
			byIndex[ad.LinkIndex] = append(byIndex[ad.LinkIndex], p)
		}
	}
	var out []Link
	for _, l := range links {
		a := l.Attrs()
		if a.RawFlags&unix.IFF_LOOPBACK != 0 {
			continue
		}
		out = append(out, Link{
			Name:      a.Name,
			Index:     a.Index,
			Kind:      l.Type(),
			MAC:       a.HardwareAddr,
			MTU:       a.MTU,
			Up:        a.Flags&net.FlagUp != 0,
			Carrier:   a.RawFlags&unix.IFF_LOWER_UP != 0,
			OperState: operState(a.OperState),
			XDP:       xdpMode(a.Xdp),
			Addrs:     byIndex[a.Index],
		})
	}
	return out, nil
}

// prefixOf converts netlink's address to the host address with its prefix
// length (not masked).
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}
