package netcfg

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/relaybox/relaybox/netcfg/nstest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// xdpPass loads the smallest XDP program there is: return XDP_PASS.
func xdpPass(t *testing.T) *ebpf.Program {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "xdp_pass",
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}, // 2 = XDP_PASS
	})
	if err != nil {
		t.Fatalf("load xdp_pass: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// attachXDP attaches fd (-1 detaches) to dev in ns with the mode flags.
// netlink.Handle has no XDP setter, so it runs on a thread inside ns with
// the package-level function, which opens its socket there.
func attachXDP(t *testing.T, ns *nstest.NS, dev string, fd, flags int) {
	t.Helper()
	err := ns.Do(func() error {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		return netlink.LinkSetXdpFdWithFlags(l, fd, flags)
	})
	if err != nil {
		t.Fatalf("attach xdp fd %d flags %#x to %s in %s: %v", fd, flags, dev, ns.Name, err)
	}
}

func TestXDPMode(t *testing.T) {
	a, _, _, nc := pair(t)
	prog := xdpPass(t)

	check := func(want string) {
		t.Helper()
		got, err := nc.XDPMode("a0")
		if err != nil || got != want {
			t.Errorf("XDPMode(a0) = %q, %v, want %q", got, err, want)
		}
		links, err := nc.Links()
		if err != nil || len(links) != 1 || links[0].XDP != want {
			t.Errorf("Links() = %v, %v, want a0 with XDP %q", links, err, want)
		}
	}

	check(XDPOff)
	attachXDP(t, a, "a0", prog.FD(), nl.XDP_FLAGS_SKB_MODE)
	check(XDPGeneric)
	attachXDP(t, a, "a0", -1, nl.XDP_FLAGS_SKB_MODE)
	check(XDPOff)
	// veth runs XDP in its driver.
	attachXDP(t, a, "a0", prog.FD(), nl.XDP_FLAGS_DRV_MODE)
	check(XDPNative)
	attachXDP(t, a, "a0", -1, nl.XDP_FLAGS_DRV_MODE)
	check(XDPOff)

	if _, err := nc.XDPMode("eth9"); !errors.Is(err, ErrNoLink) {
		t.Errorf("XDPMode(eth9) = %v, want ErrNoLink", err)
	}
}

func TestXDPModeNames(t *testing.T) {
	for _, tt := range []struct {
		x    *netlink.LinkXdp
		want string
	}{
		{nil, "off"},
		{&netlink.LinkXdp{AttachMode: nl.XDP_ATTACHED_NONE}, "off"},
		{&netlink.LinkXdp{AttachMode: nl.XDP_ATTACHED_DRV}, "native"},
		{&netlink.LinkXdp{AttachMode: nl.XDP_ATTACHED_SKB}, "generic"},
		{&netlink.LinkXdp{AttachMode: nl.XDP_ATTACHED_HW}, "offload"},
		{&netlink.LinkXdp{AttachMode: 4}, "multi"},
		{&netlink.LinkXdp{AttachMode: 9}, "unknown(9)"},
	} {
		if got := xdpMode(tt.x); got != tt.want {
			t.Errorf("xdpMode(%+v) = %q, want %q", tt.x, got, tt.want)
		}
	}
}
