// Command runqemu boots a built image in QEMU with the serial console on
// this terminal: `make qemu`. The guest's NIC is wired to a tap device on
// this host, so the relay is reachable from here at the guest's address.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/relaybox/relaybox/image"
	"github.com/relaybox/relaybox/image/qemu"
)

// The host's and the guest's addresses, from the benchmarking range that
// RFC 2544 sets aside, so nothing here can reach a real network.
const (
	tapName  = "relaybox0"
	hostAddr = "198.18.0.1/24"
	guestIP  = "198.18.0.2"
	ipParam  = "ip=" + guestIP + "::198.18.0.1:255.255.255.0:relaybox:eth0:off"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "runqemu:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "out/qemu", "directory holding vmlinuz, initrd.img and cmdline")
	nic := flag.String("nic", qemu.VirtioNet, "guest NIC model: "+qemu.VirtioNet+", "+qemu.E1000+" or "+qemu.E1000E)
	machine := flag.String("machine", qemu.PC, "guest chipset: "+qemu.PC+", or "+qemu.Q35+" (ICH9, with the TCO watchdog the x86-64 board pings)")
	extra := flag.String("append", "", "more kernel parameters, e.g. relaybox.xdp=generic")
	usb := flag.Bool("usb", false, "boot relaybox.img as a USB stick on UEFI firmware (OVMF) instead of the kernel directly; "+
		"its command line is the one built in (mkimage -append), so -append does not apply")
	flag.Parse()

	art := image.ArtifactsIn(*dir)
	cmdline, err := os.ReadFile(art.Cmdline)
	if err != nil {
		return fmt.Errorf("%w: build the image first (make image)", err)
	}
	if err := exec.Command("ip", "tuntap", "add", "dev", tapName, "mode", "tap").Run(); err != nil {
		return fmt.Errorf("create tap device %s: %w (run as root; is another make qemu running?)", tapName, err)
	}
	defer exec.Command("ip", "link", "del", tapName).Run()
	for _, args := range [][]string{
		{"addr", "add", hostAddr, "dev", tapName},
		{"link", "set", tapName, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	fmt.Fprintf(os.Stderr, "relaybox: booting %s; the relay will be at %s:3478 from this host; Ctrl-A X quits QEMU\n", *dir, guestIP)
	o := qemu.Options{
		Kernel:      art.Kernel,
		Initrd:      art.Initrd,
		Cmdline:     strings.TrimSpace(string(cmdline)) + " " + ipParam + " " + *extra,
		Machine:     *machine,
		NIC:         *nic,
		Tap:         tapName,
		Interactive: true,
	}
	if *usb {
		// The firmware writes its boot entries: each run gets a fresh
		// copy of the variable store.
		vars, err := os.CreateTemp("", "relaybox-OVMF_VARS-*.fd")
		if err != nil {
			return err
		}
		defer os.Remove(vars.Name())
		b, err := os.ReadFile(qemu.OVMFVars)
		if err != nil {
			return fmt.Errorf("%w: install the ovmf package (make deps)", err)
		}
		if _, err := vars.Write(b); err != nil {
			return err
		}
		vars.Close()
		o = qemu.Options{UEFIVars: vars.Name(), Disk: art.Disk, DiskBus: qemu.USBStick,
			Machine: *machine, NIC: *nic, Tap: tapName, MemoryMB: 1024, Interactive: true}
		fmt.Fprintf(os.Stderr, "relaybox: %s boots with the command line built into it; give mkimage -append %s for the relay to be at %s\n",
			art.Disk, ipParam, guestIP)
	}
	cmd := exec.Command("qemu-system-x86_64", o.Args()...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd.Run()
}
