// Package board describes the kinds of machine relaybox boots on: which
// kernel, which modules (NIC drivers above all), which console and kernel
// command line. A board is data; image/ builds from it and init/ loads what
// it lists. Adding a board is adding one file with one Board literal.
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
	Modules []string
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

// Release is the kernel release the package installs (`uname -r`).
func (k Kernel) Release() string {
	return strings.TrimPrefix(k.Package, "linux-image-")
}

// DebFile is the file name apt-get download gives the package.
func (k Kernel) DebFile() string {
	return fmt.Sprintf("%s_%s_amd64.deb", k.Package, k.Version)
}

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
