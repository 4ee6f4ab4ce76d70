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
		for _, fw := range b.Firmware {
			if !strings.HasPrefix(fw.Name, "firmware-") || fw.Version == "" || !sha.MatchString(fw.SHA256) {
				t.Errorf("%s: firmware %+v: want a firmware-* package, a version and a sha256", name, fw)
			}
		}
		seen := map[string]bool{}
		for _, m := range b.Modules {
			if seen[m] {
				t.Errorf("%s: module %s listed twice", name, m)
			}
			seen[m] = true
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
	for _, tc := range []struct {
		p    Package
		want string
	}{
		{Package{Name: "firmware-bnx2x", Version: "20230210-5"}, "firmware-bnx2x_20230210-5_all.deb"},
		{Package{Name: "systemd-boot-efi", Version: "252.39-1~deb12u2", Arch: "amd64"}, "systemd-boot-efi_252.39-1~deb12u2_amd64.deb"},
		{Package{Name: "e2fsprogs", Version: "1:1.47.0-2", Arch: "amd64"}, "e2fsprogs_1%3a1.47.0-2_amd64.deb"},
	} {
		if got := tc.p.DebFile(); got != tc.want {
			t.Errorf("%+v.DebFile() = %q, want %q", tc.p, got, tc.want)
		}
	}
}
