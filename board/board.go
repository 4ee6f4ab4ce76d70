// Package board describes the kinds of machine relaybox boots on: which
// kernel, which modules (NIC drivers above all), which firmware, which
// console and kernel command line. A board is data; image/ builds from it
// and init/ loads what it lists. Adding a board is adding one file with one
// Board literal.
package board

import (
	"fmt"
	"sort"
	"strings"
)

// Board is one kind of machine.
type Board struct {
	// Name is what `make image BOARD=<name>` selects.
	Name string
	// Kernel is the Debian kernel package the image boots.
	Kernel Kernel
	// Modules are loaded by init in this order, each after its
	// dependencies. A module whose hardware is absent loads and idles.
	// Names are as modprobe takes them (usb_storage for usb-storage.ko);
	// a name missing from the kernel's modules.dep fails the build, so a
	// module built into the kernel must not be listed.
	Modules []string
	// Firmware are Debian firmware packages. The image carries the files
	// of these packages that the board's modules ask for (their
	// MODULE_FIRMWARE names) under /lib/firmware, not whole packages.
	Firmware []Package
	// Cmdline is the default kernel command line (console first).
	Cmdline []string
}

// Kernel pins a Debian linux-image package by version and checksum, so every
// build of a board boots the same bytes.
type Kernel struct {
	Package string // e.g. linux-image-6.1.0-50-amd64
	Version string // Debian version, e.g. 6.1.176-1
	SHA256  string // of the .deb file
}

// Package pins any other Debian package by version and checksum.
type Package struct {
	Name    string // e.g. firmware-misc-nonfree
	Version string // Debian version, e.g. 20230210-5
	SHA256  string // of the .deb file
	Arch    string // "all" or "amd64"; empty means "all"
}

// DebFile is the file name apt-get download gives the package. apt writes
// an epoch's colon as %3a.
func (p Package) DebFile() string {
	arch := p.Arch
	if arch == "" {
		arch = "all"
	}
	return fmt.Sprintf("%s_%s_%s.deb", p.Name, strings.ReplaceAll(p.Version, ":", "%3a"), arch)
}

// Deb is the kernel as a Package.
func (k Kernel) Deb() Package {
	return Package{Name: k.Package, Version: k.Version, SHA256: k.SHA256, Arch: "amd64"}
}

// Release is the kernel release the package installs (`uname -r`).
func (k Kernel) Release() string {
	return strings.TrimPrefix(k.Package, "linux-image-")
}

// DebFile is the file name apt-get download gives the package.
func (k Kernel) DebFile() string { return k.Deb().DebFile() }

var boards = map[string]Board{}

func register(b Board) { boards[b.Name] = b }

// Lookup returns the board called name.
func Lookup(name string) (Board, error) {
	b, ok := boards[name]
	if !ok {
		return Board{}, fmt.Errorf("unknown board %q: choose one of %s", name, strings.Join(Names(), ", "))
	}
	return b, nil
}

// Names lists the boards, sorted.
func Names() []string {
	var names []string
	for n := range boards {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
