package image

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// The base archive carries the firmware under lib/firmware by the name the
// driver asks for, and the baked-in config where init reads it.
func TestBaseArchive(t *testing.T) {
	src := filepath.Join(t.TempDir(), "ice-1.3.30.0.pkg")
	if err := os.WriteFile(src, []byte("ddp"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		config []byte
		want   map[string]string // path in the archive → content; "" for absent
	}{
		{[]byte("software = baked\n"), map[string]string{
			"lib/firmware/intel/ice/ddp/ice.pkg": "ddp",
			"etc/relaybox/relaybox.conf":         "software = baked\n",
		}},
		{nil, map[string]string{"etc/relaybox/relaybox.conf": ""}},
	} {
		a, err := baseArchive(kernelTree{Release: "6.1.0-50-amd64"}, nil,
			[]firmwareFile{{Name: "intel/ice/ddp/ice.pkg", Src: src}}, tc.config)
		if err != nil {
			t.Fatalf("baseArchive: %v", err)
		}
		for path, want := range tc.want {
			r, ok := a.Get(path)
			if want == "" {
				if ok {
					t.Errorf("config %q: archive has %s, want none", tc.config, path)
				}
				continue
			}
			if !ok {
				t.Errorf("config %q: archive has no %s", tc.config, path)
				continue
			}
			b, err := io.ReadAll(io.NewSectionReader(r, 0, int64(r.FileSize)))
			if err != nil || string(b) != want {
				t.Errorf("%s = %q (%v), want %q", path, b, err, want)
			}
		}
	}
}
