package netcfg

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// XDP attach modes as XDPMode reports them; "native" and "generic" are the
// words of the ready line (xdp=<iface>:<native|generic|off>).
const (
	XDPOff     = "off"     // no program attached
	XDPNative  = "native"  // in the driver (XDP_ATTACHED_DRV)
	XDPGeneric = "generic" // in the stack after the driver (XDP_ATTACHED_SKB)
	XDPOffload = "offload" // on the NIC itself (XDP_ATTACHED_HW)
	XDPMulti   = "multi"   // programs in more than one mode
)

// xdpAttachedMulti is XDP_ATTACHED_MULTI from linux/if_link.h, which
// netlink/nl does not define.
const xdpAttachedMulti = 4

// XDPMode reports the XDP mode the kernel has attached on the named link, as
// netlink's IFLA_XDP_ATTACHED says: one of XDPOff, XDPNative, XDPGeneric,
// XDPOffload, XDPMulti. This is what the kernel accepted, whatever mode was
// asked for.
func (c *Configurator) XDPMode(name string) (string, error) {
	l, err := c.link(name)
	if err != nil {
		return "", fmt.Errorf("xdp mode: %w", err)
	}
	return xdpMode(l.Attrs().Xdp), nil
}

func xdpMode(x *netlink.LinkXdp) string {
	if x == nil {
		return XDPOff
	}
	switch x.AttachMode {
	case nl.XDP_ATTACHED_NONE:
		return XDPOff
	case nl.XDP_ATTACHED_DRV:
		return XDPNative
	case nl.XDP_ATTACHED_SKB:
		return XDPGeneric
	case nl.XDP_ATTACHED_HW:
		return XDPOffload
	case xdpAttachedMulti:
		return XDPMulti
	}
	return fmt.Sprintf("unknown(%d)", x.AttachMode)
}
