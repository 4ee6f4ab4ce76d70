package image

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The PXE bundle, out/<board>/pxe/: the kernel and initramfs with an iPXE
// script and a PXELINUX entry that boot them. Every path in the scripts is
// relative, so the directory can be served as it is from a TFTP or HTTP
// root, or from a subdirectory of one.
const (
	PXEKernel   = "vmlinuz"
	PXEInitrd   = "initrd.img"
	IPXEScript  = "boot.ipxe"
	PXELinuxCfg = "pxelinux.cfg/default"
)

// noIPNote is the scripts' note when the build gave no ip=.
const noIPNote = "# No ip= was given at build time (mkimage -append): init asks DHCP on every\n" +
	"# Ethernet link, unless relaybox.conf or a relaybox.config URL says otherwise.\n"

func hasIP(params []string) bool {
	return slices.ContainsFunc(params, func(p string) bool { return strings.HasPrefix(p, "ip=") })
}

func ipNote(cmdline []string) string {
	if hasIP(cmdline) {
		return ""
	}
	return noIPNote
}

// ipxeScript boots the bundle with iPXE. The initrd= parameter names the
// initramfs for the kernel's EFI stub when iPXE itself runs under UEFI.
func ipxeScript(boardName string, cmdline []string) string {
	return fmt.Sprintf(`#!ipxe
# relaybox, board %s. Chain-load this script (chain boot.ipxe, or a DHCP
# boot file name of tftp://<server>/<dir>/boot.ipxe or http://...); the
# kernel and the initramfs are fetched from the script's own directory.
%secho relaybox: loading the %s image
kernel %s initrd=%s %s
initrd %s
boot
`, boardName, ipNote(cmdline), boardName, PXEKernel, PXEInitrd, strings.Join(cmdline, " "), PXEInitrd)
}

// pxelinuxConfig boots the bundle with PXELINUX (syslinux): pxelinux.0
// and ldlinux.c32 go next to the pxelinux.cfg directory (on Debian,
// /usr/lib/PXELINUX/pxelinux.0 and /usr/lib/syslinux/modules/bios/
// ldlinux.c32), and the DHCP boot file names that pxelinux.0: PXELINUX
// looks for its config and the files it names in its own directory.
func pxelinuxConfig(boardName string, cmdline []string) string {
	return fmt.Sprintf(`# relaybox, board %s, for PXELINUX.
%sDEFAULT relaybox
PROMPT 0
TIMEOUT 0
LABEL relaybox
  KERNEL %s
  INITRD %s
  APPEND %s
`, boardName, ipNote(cmdline), PXEKernel, PXEInitrd, strings.Join(cmdline, " "))
}

// writePXE writes the bundle into dir, replacing what was there.
func writePXE(dir, kernel, initrd, boardName string, cmdline []string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(PXELinuxCfg)), 0o755); err != nil {
		return err
	}
	if err := copyFile(kernel, filepath.Join(dir, PXEKernel)); err != nil {
		return err
	}
	if err := copyFile(initrd, filepath.Join(dir, PXEInitrd)); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, IPXEScript), []byte(ipxeScript(boardName, cmdline)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, PXELinuxCfg), []byte(pxelinuxConfig(boardName, cmdline)), 0o644)
}
