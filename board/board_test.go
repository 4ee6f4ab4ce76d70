package board

import (
	"regexp"
	"strings"
	"testing"
)

// Every registered board must be complete: image/ builds from these fields
// without further checks.
func TestBoardsAreComplete(t *testing.T) {
	sha := regexp.MustCompile(`^[0-9a-f]{64}$`)
	for _, name := range Names() {
		b, err := Lookup(name)
		if err != nil {
			t.Fatalf("Lookup(%q) = %v", name, err)
		}
		if !strings.HasPrefix(b.Kernel.Package, "linux-image-") || b.Kernel.Version == "" {
			t.Errorf("%s: kernel %+v: want a linux-image-* package and a version", name, b.Kernel)
		}
		if !sha.MatchString(b.Kernel.SHA256) {
			t.Errorf("%s: kernel sha256 %q is not 64 hex digits", name, b.Kernel.SHA256)
		}
		if len(b.Modules) == 0 {
			t.Errorf("%s: no modules: a Debian kernel has its NIC drivers as modules", name)
		}
		if len(b.Cmdline) == 0 || !strings.HasPrefix(b.Cmdline[0], "console=") {
			t.Errorf("%s: cmdline %q: want console= first", name, b.Cmdline)
		}
	}
}

func TestLookupUnknown(t *testing.T) {
	_, err := Lookup("nope")
	if err == nil || !strings.Contains(err.Error(), "qemu") {
		t.Errorf("Lookup(nope) = %v, want an error listing the boards", err)
	}
}

func TestKernelNames(t *testing.T) {
	k := Kernel{Package: "linux-image-6.1.0-50-amd64", Version: "6.1.176-1"}
	if got, want := k.Release(), "6.1.0-50-amd64"; got != want {
		t.Errorf("Release() = %q, want %q", got, want)
	}
	if got, want := k.DebFile(), "linux-image-6.1.0-50-amd64_6.1.176-1_amd64.deb"; got != want {
		t.Errorf("DebFile() = %q, want %q", got, want)
	}
}
