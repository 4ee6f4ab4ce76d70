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
			[]string{"kvm", "mon:stdio"}},
		{"no network, interactive", Options{Kernel: "k", Initrd: "i", MemoryMB: 256, Interactive: true},
			[]string{"-nic none", "-m 256", "-serial mon:stdio"},
			[]string{"-netdev", "-monitor none"}},
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
