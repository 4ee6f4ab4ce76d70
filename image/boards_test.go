package image

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/relaybox/relaybox/board"
)

// TestBoardsResolve checks every board against its real kernel and
// firmware packages without building an image: each listed module is in
// the kernel (a missing one fails the build), and the firmware packages
// carry at least one file the modules ask for (a package that carries
// none is dead weight, or pinned wrong). The packages are downloaded into
// the repository's out/cache once, as the image builds do.
func TestBoardsResolve(t *testing.T) {
	cache := filepath.Join("..", "out", "cache")
	for _, name := range board.Names() {
		t.Run(name, func(t *testing.T) {
			b, err := board.Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			tree, err := fetchKernel(b.Kernel, cache, t.Logf)
			if err != nil {
				t.Fatalf("kernel: %v", err)
			}
			modules, err := moduleLoadOrder(tree.modulesDir(), b.Modules)
			if err != nil {
				t.Fatalf("modules: %v", err)
			}
			wanted, err := moduleFirmware(tree.modulesDir(), modules)
			if err != nil {
				t.Fatalf("modinfo: %v", err)
			}
			for _, p := range b.Firmware {
				roots, _, err := fetchFirmware([]board.Package{p}, cache, t.Logf)
				if err != nil {
					t.Fatalf("firmware: %v", err)
				}
				found, _, err := findFirmware(roots, wanted)
				if err != nil {
					t.Fatalf("firmware %s: %v", p.Name, err)
				}
				if len(found) == 0 {
					t.Errorf("firmware package %s carries none of the files the modules ask for: %s", p.Name, strings.Join(wanted, " "))
				}
			}
		})
	}
}
