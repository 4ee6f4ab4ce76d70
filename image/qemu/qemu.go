// Package qemu runs a relaybox image under QEMU: the one place that knows
// QEMU's command line, used by `make qemu` and by the appliance tests.
package qemu

import (
	"fmt"
	"strings"
)

// NIC models a guest network card can be.
const (
	VirtioNet = "virtio-net-pci" // takes native XDP
	E1000     = "e1000"          // generic XDP only
)

// Options describe one guest.
type Options struct {
	Kernel, Initrd string
	// Cmdline is the whole kernel command line.
	Cmdline string
	// NIC is the guest's network card model (VirtioNet, E1000); Tap is
	// the host tap device it is wired to, in QEMU's network namespace.
	NIC, Tap string
	// MAC is the guest NIC's address; empty lets QEMU choose.
	MAC string
	// MemoryMB is the guest's memory; 0 means 512.
	MemoryMB int
	// Interactive multiplexes the QEMU monitor onto the serial console
	// (Ctrl-A X quits) for a person at a terminal; otherwise the serial
	// port is plain stdin/stdout for a program to drive.
	Interactive bool
}

// Args returns QEMU's arguments. QEMU runs under TCG: KVM is not usable on
// the machines relaybox is built and tested on.
func (o Options) Args() []string {
	mem := o.MemoryMB
	if mem == 0 {
		mem = 512
	}
	args := []string{
		"-accel", "tcg",
		"-m", fmt.Sprint(mem),
		"-kernel", o.Kernel,
		"-initrd", o.Initrd,
		"-append", o.Cmdline,
		// Power off and panics end QEMU instead of rebooting the guest.
		"-no-reboot",
		"-nodefaults",
		"-display", "none",
	}
	if o.Interactive {
		args = append(args, "-serial", "mon:stdio")
	} else {
		args = append(args, "-serial", "stdio", "-monitor", "none")
	}
	if o.Tap == "" {
		return append(args, "-nic", "none")
	}
	dev := []string{o.NIC, "netdev=n0"}
	if o.MAC != "" {
		dev = append(dev, "mac="+o.MAC)
	}
	return append(args,
		"-netdev", "tap,id=n0,ifname="+o.Tap+",script=no,downscript=no",
		"-device", strings.Join(dev, ","),
	)
}
