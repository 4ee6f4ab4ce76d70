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
	E1000E    = "e1000e"         // q35's default NIC, a real server's Intel 1G; generic XDP only
)

// Machines a guest can be.
const (
	PC  = "pc"  // i440FX and PIIX: QEMU's default
	Q35 = "q35" // ICH9 and PCIe, like a real server's chipset, TCO watchdog included
)

// Buses a Disk can be attached to.
const (
	USBStick = "usb"    // a removable USB mass-storage stick on an xHCI controller
	Virtio   = "virtio" // a virtio-blk disk
)

// OVMF's firmware and the variable store template it starts from, as
// Debian's ovmf package installs them.
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS.fd"
)

// Options describe one guest.
type Options struct {
	// Kernel and Initrd boot the kernel directly (-kernel) with Cmdline,
	// the whole kernel command line. Without a Kernel the guest boots
	// through its firmware: from Disk, or from the network (NetBoot).
	Kernel, Initrd string
	Cmdline        string
	// NetBoot boots from the NIC (-boot n): its option ROM is iPXE.
	NetBoot bool
	// Disk is a raw disk image on DiskBus (USBStick unless Virtio). The
	// guest's writes go to a temporary overlay: the image is unchanged.
	Disk, DiskBus string
	// UEFIVars, when set, boots OVMF (OVMFCode) instead of SeaBIOS with
	// this writable variable store: a copy of OVMFVars per guest.
	UEFIVars string
	// Machine is the chipset; empty is QEMU's default, PC. On Q35 the
	// ICH9's TCO watchdog is always there and resets the guest when it
	// fires, as a real server's does.
	Machine string
	// Watchdog adds QEMU's i6300esb watchdog; when it fires, QEMU
	// resets the guest, which -no-reboot turns into QEMU exiting.
	Watchdog bool
	// NIC is the guest's network card model (VirtioNet, E1000); Tap is
	// the host tap device it is wired to, in QEMU's network namespace.
	NIC, Tap string
	// MAC is the guest NIC's address; empty lets QEMU choose.
	MAC string
	// MemoryMB is the guest's memory; 0 means 512.
	MemoryMB int
	// SecondSerial, when set, adds a second serial port (the guest's
	// ttyS1, where most servers' BMCs carry serial-over-LAN) on a unix
	// socket at this path, which QEMU listens on.
	SecondSerial string
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
		// Power off and panics end QEMU instead of rebooting the guest.
		"-no-reboot",
		"-nodefaults",
		"-display", "none",
		// Entropy for the guest, which the emulated CPU cannot give.
		"-device", "virtio-rng-pci",
	}
	if o.Machine != "" {
		args = append(args, "-machine", o.Machine)
	}
	if o.Machine == Q35 {
		// QEMU 7.2 straps the ICH9's NO_REBOOT by default: iTCO_wdt
		// arms the TCO watchdog and it counts down, but its expiry
		// never resets the guest.
		args = append(args, "-global", "ICH9-LPC.noreboot=false")
	}
	if o.Kernel != "" {
		args = append(args, "-kernel", o.Kernel, "-initrd", o.Initrd, "-append", o.Cmdline)
	}
	if o.UEFIVars != "" {
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+o.UEFIVars)
	}
	if o.NetBoot {
		args = append(args, "-boot", "n")
	}
	if o.Disk != "" {
		drive := "if=none,id=disk0,format=raw,snapshot=on,file=" + o.Disk
		switch o.DiskBus {
		case Virtio:
			args = append(args, "-drive", drive, "-device", "virtio-blk-pci,drive=disk0,bootindex=0")
		default:
			args = append(args, "-drive", drive,
				"-device", "qemu-xhci,id=xhci",
				"-device", "usb-storage,bus=xhci.0,drive=disk0,removable=on,bootindex=0")
		}
	}
	if o.Watchdog {
		args = append(args, "-device", "i6300esb")
	}
	if o.Interactive {
		args = append(args, "-serial", "mon:stdio")
	} else {
		args = append(args, "-serial", "stdio", "-monitor", "none")
	}
	if o.SecondSerial != "" {
		args = append(args, "-serial", "unix:"+o.SecondSerial+",server=on,wait=off")
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
