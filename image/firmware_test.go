package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Two unpacked firmware packages shaped like Debian's: ice.pkg is a
// relative link to the versioned file, one link is absolute (as some
// packages have them) and must resolve inside the package, one file ships
// compressed.
func TestFindFirmware(t *testing.T) {
	root := t.TempDir()
	misc, bnx := filepath.Join(root, "misc"), filepath.Join(root, "bnx")
	files := map[string]string{
		"misc/lib/firmware/intel/ice/ddp/ice-1.3.30.0.pkg": "ddp",
		"misc/lib/firmware/tigon/tg3.bin":                  "tg3",
		"bnx/lib/firmware/bnx2x/bnx2x-e2-7.13.21.0.fw":     "e2",
		"bnx/lib/firmware/zst/fw.bin.zst":                  "zstd",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"misc/lib/firmware/intel/ice/ddp/ice.pkg": "ice-1.3.30.0.pkg",
		"misc/lib/firmware/tigon/abs.bin":         "/lib/firmware/tigon/tg3.bin",
		"misc/lib/firmware/loop.bin":              "loop.bin",
		"misc/lib/firmware/escape.bin":            "/etc/passwd",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}

	found, missing, err := findFirmware([]string{misc, bnx},
		[]string{"intel/ice/ddp/ice.pkg", "tigon/abs.bin", "bnx2x/bnx2x-e2-7.13.21.0.fw", "zst/fw.bin", "bnx2x/bnx2x-e1-7.13.21.0.fw"})
	if err != nil {
		t.Fatalf("findFirmware: %v", err)
	}
	want := []firmwareFile{
		{"intel/ice/ddp/ice.pkg", filepath.Join(misc, "lib/firmware/intel/ice/ddp/ice-1.3.30.0.pkg")},
		{"tigon/abs.bin", filepath.Join(misc, "lib/firmware/tigon/tg3.bin")},
		{"bnx2x/bnx2x-e2-7.13.21.0.fw", filepath.Join(bnx, "lib/firmware/bnx2x/bnx2x-e2-7.13.21.0.fw")},
		{"zst/fw.bin.zst", filepath.Join(bnx, "lib/firmware/zst/fw.bin.zst")},
	}
	if diff := cmp.Diff(want, found, cmp.AllowUnexported(firmwareFile{})); diff != "" {
		t.Errorf("findFirmware found (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"bnx2x/bnx2x-e1-7.13.21.0.fw"}, missing); diff != "" {
		t.Errorf("findFirmware missing (-want +got):\n%s", diff)
	}

	for name, wantErr := range map[string]string{"loop.bin": "too many levels", "escape.bin": "outside /lib/firmware"} {
		if _, _, err := findFirmware([]string{misc}, []string{name}); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("findFirmware(%s) = %v, want an error with %q", name, err, wantErr)
		}
	}
}
