//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Mode is how an XDP program runs on an interface.
type Mode int

const (
	// ModeOff means no XDP program: every packet takes the user-space path.
	ModeOff Mode = iota
	// ModeGeneric runs the program after the kernel has built an skb
	// (XDP_FLAGS_SKB_MODE). Any driver supports it; it is correct but
	// brings no speed-up.
	ModeGeneric
	// ModeNative runs the program in the driver's receive path
	// (XDP_FLAGS_DRV_MODE), the fast path. The driver must support it.
	ModeNative
	// ModeAuto is a request, never a result: native where the driver
	// accepts it, generic otherwise.
	ModeAuto
)

var modeNames = map[Mode]string{
	ModeOff:     "off",
	ModeGeneric: "generic",
	ModeNative:  "native",
	ModeAuto:    "auto",
}

// String returns the mode as configuration spells it: "off", "generic",
// "native" or "auto".
func (m Mode) String() string {
	if s, ok := modeNames[m]; ok {
		return s
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode returns the Mode that String spells s.
func ParseMode(s string) (Mode, error) {
	for _, m := range []Mode{ModeOff, ModeGeneric, ModeNative, ModeAuto} {
		if s == m.String() {
			return m, nil
		}
	}
	return ModeOff, fmt.Errorf("unknown xdp mode %q: want off, generic, native or auto", s)
}

// Attachment is the program attached to one interface through a bpf_link. It
// stays attached until Close, or until the process that made it exits.
type Attachment struct {
	// Iface is the interface's name.
	Iface string
	// Mode is the mode the program runs in: ModeNative or ModeGeneric.
	Mode Mode
	// NativeErr is why the driver refused native mode when ModeAuto fell
	// back to generic, for the operator to read; nil otherwise.
	NativeErr error

	link    link.Link
	txPorts *ebpf.Map // a clone, so that Close works after Program.Close
	ifindex uint32
}

// Attach attaches the program to the interface named ifname in the network
// namespace of the calling thread. want is ModeNative or ModeGeneric for exactly that mode,
// or ModeAuto for native with a fall-back to generic when the driver refuses
// native; the Attachment says which mode is in use. Another XDP program on
// the interface is an error in every mode: Attach does not replace it.
//
// In native mode the interface also becomes a redirect target: the program
// on any other interface sends the datagrams whose next hop is out this one
// straight there. An interface in generic mode is no target (a native
// driver cannot hand it frames); traffic for it goes through the stack.
//
// The relay's FIB lookups need forwarding on for the interface
// (net.ipv4.conf.IFACE.forwarding, net.ipv6.conf.IFACE.forwarding);
// without it every binding's datagrams are passed to the stack, counted as
// ReasonFwdDisabled.
func (p *Program) Attach(ifname string, want Mode) (*Attachment, error) {
	iface, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("attach xdp to %s: %w", ifname, err)
	}
	switch want {
	case ModeNative, ModeGeneric:
		a, err := p.attach(iface, want)
		if err != nil {
			return nil, fmt.Errorf("%w%s", err, attachHint(ifname, want, err))
		}
		return a, nil
	case ModeAuto:
		a, nerr := p.attach(iface, ModeNative)
		if nerr == nil {
			return a, nil
		}
		if occupied(nerr) {
			// Generic would meet the same program.
			return nil, fmt.Errorf("%w%s", nerr, attachHint(ifname, want, nerr))
		}
		a, gerr := p.attach(iface, ModeGeneric)
		if gerr != nil {
			return nil, fmt.Errorf("attach xdp to %s: native mode failed (%w), and generic too: %w%s", ifname, nerr, gerr, attachHint(ifname, want, gerr))
		}
		a.NativeErr = nerr
		return a, nil
	default:
		return nil, fmt.Errorf("attach xdp to %s: cannot attach in mode %s; want native, generic or auto", ifname, want)
	}
}

func (p *Program) attach(iface *net.Interface, mode Mode) (*Attachment, error) {
	flags := link.XDPGenericMode
	if mode == ModeNative {
		flags = link.XDPDriverMode
	}
	l, err := link.AttachXDP(link.XDPOptions{
		Program:   p.objs.RelayXdp,
		Interface: iface.Index,
		Flags:     flags,
	})
	if err != nil {
		return nil, fmt.Errorf("attach xdp to %s in %s mode: %w", iface.Name, mode, err)
	}
	a := &Attachment{Iface: iface.Name, Mode: mode, link: l}
	if mode != ModeNative {
		// A native driver cannot hand frames to a NIC that has only
		// generic XDP: traffic towards it takes the stack.
		return a, nil
	}
	// Make the NIC a redirect target for the program on the other NICs.
	// The devmap resolves the ifindex in the calling thread's namespace.
	if a.txPorts, err = p.objs.TxPorts.Clone(); err == nil {
		a.ifindex = uint32(iface.Index)
		err = a.txPorts.Update(&a.ifindex, &a.ifindex, ebpf.UpdateAny)
	}
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("attach xdp to %s: make it a redirect target: %w", iface.Name, err)
	}
	return a, nil
}

// occupied reports whether an attach failed because an XDP program is
// already on the interface: EBUSY for a link in the same mode, EEXIST for a
// program in the other mode or one attached through netlink.
func occupied(err error) bool {
	return errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST)
}

// attachHint says what to do about the attach errors an operator can fix.
func attachHint(ifname string, want Mode, err error) string {
	switch {
	case occupied(err):
		return fmt.Sprintf(" (another XDP program is attached to %s, see `ip link show dev %s`; detach it first)", ifname, ifname)
	case want == ModeNative && errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Sprintf(" (the driver of %s has no native XDP; use xdp mode generic or auto)", ifname)
	}
	return ""
}

// Close detaches the program from the interface. Redirects towards the
// interface stop first.
func (a *Attachment) Close() error {
	var errs []error
	if a.txPorts != nil {
		if a.ifindex != 0 {
			if err := a.txPorts.Delete(&a.ifindex); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, err)
			}
		}
		a.txPorts.Close()
		a.txPorts = nil
	}
	if err := a.link.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("detach xdp from %s: %w", a.Iface, err)
	}
	return nil
}
