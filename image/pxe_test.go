package image

import (
	"strings"
	"testing"
)

func TestPXEScripts(t *testing.T) {
	board := []string{"console=ttyS0,115200", "panic=-1"}
	static := append(board, "ip=198.18.0.2::198.18.0.1:255.255.255.0::eth0:off")
	for _, tc := range []struct {
		name     string
		got      string
		want     []string
		wantNone []string
	}{
		{"iPXE, no ip=", ipxeScript("qemu", board), []string{
			"#!ipxe\n", "# No ip= was given",
			"\nkernel vmlinuz initrd=initrd.img console=ttyS0,115200 panic=-1\n",
			"\ninitrd initrd.img\n", "\nboot\n",
		}, nil},
		{"iPXE, static ip=", ipxeScript("qemu", static), []string{
			"\nkernel vmlinuz initrd=initrd.img console=ttyS0,115200 panic=-1 ip=198.18.0.2::198.18.0.1:255.255.255.0::eth0:off\n",
		}, []string{"No ip="}},
		{"PXELINUX, static ip=", pxelinuxConfig("qemu", static), []string{
			"\nDEFAULT relaybox\n", "\n  KERNEL vmlinuz\n", "\n  INITRD initrd.img\n",
			"\n  APPEND console=ttyS0,115200 panic=-1 ip=198.18.0.2::198.18.0.1:255.255.255.0::eth0:off\n",
		}, []string{"No ip="}},
		{"PXELINUX, no ip=", pxelinuxConfig("qemu", board), []string{
			"# No ip= was given", "\n  APPEND console=ttyS0,115200 panic=-1\n",
		}, nil},
	} {
		for _, w := range tc.want {
			if !strings.Contains(tc.got, w) {
				t.Errorf("%s: script\n%s\nwant %q in it", tc.name, tc.got, w)
			}
		}
		for _, n := range tc.wantNone {
			if strings.Contains(tc.got, n) {
				t.Errorf("%s: script\n%s\nwant no %q in it", tc.name, tc.got, n)
			}
		}
	}
}
