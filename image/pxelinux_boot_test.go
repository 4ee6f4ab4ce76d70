package image_test

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relaybox/relaybox/image"
)

// Where Debian's pxelinux and syslinux-common packages install PXELINUX
// and the library every syslinux loader needs.
const (
	pxelinuxLoader = "/usr/lib/PXELINUX/pxelinux.0"
	ldlinuxModule  = "/usr/lib/syslinux/modules/bios/ldlinux.c32"
)

// TestPXELinuxBoot boots QEMU from the network through PXELINUX, as a PXE
// server that runs syslinux would: the bundle sits in a subdirectory of
// the TFTP root with pxelinux.0 and ldlinux.c32 next to its pxelinux.cfg,
// DHCP hands out that pxelinux.0, and the NIC's option ROM (iPXE, under
// SeaBIOS) runs it. PXELINUX takes the subdirectory from its own path and
// finds its config, the kernel and the initramfs in it.
func TestPXELinuxBoot(t *testing.T) {
	art := buildImage(t)
	const dir = "relaybox"
	root := t.TempDir()
	bundle := filepath.Join(root, dir)
	for _, f := range []struct{ src, dst string }{
		{filepath.Join(art.PXE, image.PXEKernel), image.PXEKernel},
		{filepath.Join(art.PXE, image.PXEInitrd), image.PXEInitrd},
		{filepath.Join(art.PXE, image.PXELinuxCfg), image.PXELinuxCfg},
		{pxelinuxLoader, "pxelinux.0"},
		{ldlinuxModule, "ldlinux.c32"},
	} {
		b, err := os.ReadFile(f.src)
		if err != nil {
			t.Fatalf("%v (are the pxelinux and syslinux-common packages installed? make deps)", err)
		}
		dst := filepath.Join(bundle, f.dst)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ns := tapNamespace(t)
	serveDHCP(t, ns, path.Join(dir, "pxelinux.0"))
	asked := serveTFTP(t, ns, root)
	netBoot(t, ns, "PXELINUX")

	// The files came through PXELINUX, in its order.
	got := asked()
	t.Logf("TFTP requests: %s", strings.Join(got, " "))
	last := -1
	for _, name := range []string{"pxelinux.0", "ldlinux.c32", image.PXELinuxCfg, image.PXEKernel, image.PXEInitrd} {
		i := slices.Index(got, path.Join(dir, name))
		switch {
		case i < 0:
			t.Errorf("TFTP requests %q: want %s/%s among them", got, dir, name)
		case i < last:
			t.Errorf("TFTP requests %q: want %s/%s after the files before it", got, dir, name)
		default:
			last = i
		}
	}
}
