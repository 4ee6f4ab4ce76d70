package qemu

import (
	"strings"
	"testing"
)

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want []string // substrings of the joined command line
		not  []string
	}{
		{"virtio on a tap", Options{Kernel: "k", Initrd: "i", Cmdline: "console=ttyS0", NIC: VirtioNet, Tap: "tap0", MAC: "52:54:00:00:00:02"},
			[]string{"-accel tcg", "-kernel k", "-initrd i", "-append console=ttyS0", "-m 512", "-no-reboot",
				"-netdev tap,id=n0,ifname=tap0,script=no,downscript=no", "-device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:02",
				"-serial stdio", "-monitor none"},
			[]string{"kvm", "mon:stdio", "-machine"}},
		{"no network, interactive", Options{Kernel: "k", Initrd: "i", MemoryMB: 256, Interactive: true},
			[]string{"-nic none", "-m 256", "-serial mon:stdio"},
			[]string{"-netdev", "-monitor none"}},
		{"PXE", Options{NetBoot: true, NIC: VirtioNet, Tap: "tap0"},
			[]string{"-boot n", "-device virtio-net-pci,netdev=n0"},
			[]string{"-kernel", "-initrd", "-append", "pflash"}},
		{"UEFI from a USB stick, watchdog", Options{UEFIVars: "/tmp/vars.fd", Disk: "relaybox.img", Watchdog: true},
			[]string{"if=pflash,format=raw,unit=0,readonly=on,file=" + OVMFCode, "if=pflash,format=raw,unit=1,file=/tmp/vars.fd",
				"-drive if=none,id=disk0,format=raw,snapshot=on,file=relaybox.img", "-device qemu-xhci,id=xhci",
				"-device usb-storage,bus=xhci.0,drive=disk0,removable=on,bootindex=0", "-device i6300esb"},
			[]string{"-kernel", "-boot n", "virtio-blk"}},
		{"q35 with e1000e, ttyS1 on a socket", Options{Kernel: "k", Initrd: "i", Machine: Q35, NIC: E1000E, Tap: "tap0", SecondSerial: "/tmp/s1"},
			[]string{"-machine q35", "-global ICH9-LPC.noreboot=false", "-device e1000e,netdev=n0", "-serial stdio -monitor none -serial unix:/tmp/s1,server=on,wait=off"},
			[]string{"i6300esb"}},
		{"virtio disk", Options{Disk: "d.img", DiskBus: Virtio},
			[]string{"-device virtio-blk-pci,drive=disk0,bootindex=0"},
			[]string{"usb-storage", "pflash"}},
	} {
		got := strings.Join(tc.o.Args(), " ")
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: Args() = %q, want %q in it", tc.name, got, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(got, n) {
				t.Errorf("%s: Args() = %q, want no %q", tc.name, got, n)
			}
		}
	}
}
