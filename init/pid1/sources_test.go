package pid1

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/relaybox/relaybox/relay"
)

// The label init looks for is read from real FAT16 and FAT32 file systems
// made by mkfs.vfat.
func TestFATLabel(t *testing.T) {
	for _, tc := range []struct {
		fat   string
		label string
	}{
		{"16", "RELAYBOX"},
		{"32", "RELAYBOX"},
		{"32", "OTHER"},
	} {
		img := filepath.Join(t.TempDir(), "fat.img")
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, 40<<20); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("mkfs.vfat", "-F", tc.fat, "-n", tc.label, img).CombinedOutput()
		if err != nil {
			t.Fatalf("mkfs.vfat: %v\n%s", err, out)
		}
		if got := fatLabel(img); got != tc.label {
			t.Errorf("fatLabel(FAT%s labelled %s) = %q", tc.fat, tc.label, got)
		}
	}
	if got := fatLabel("/dev/null"); got != "" {
		t.Errorf("fatLabel(/dev/null) = %q, want none", got)
	}
}

// A GPT partition name in the kernel's uevent finds the partition too.
func TestFindPartitionByGPTName(t *testing.T) {
	sys := t.TempDir()
	for name, uevent := range map[string]string{
		"vda":  "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n",
		"vda1": "MAJOR=254\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=EFI\n",
		"vda2": "MAJOR=254\nMINOR=2\nDEVNAME=vda2\nDEVTYPE=partition\nPARTN=2\nPARTNAME=RELAYBOX\n",
	} {
		os.MkdirAll(filepath.Join(sys, name), 0o755)
		os.WriteFile(filepath.Join(sys, name, "uevent"), []byte(uevent), 0o644)
	}
	if got := findPartition(sys, "RELAYBOX"); got != "/dev/vda2" {
		t.Errorf("findPartition(RELAYBOX) = %q, want /dev/vda2", got)
	}
	if got := findPartition(sys, "NOPE"); got != "" {
		t.Errorf("findPartition(NOPE) = %q, want none", got)
	}
}

// fetchConfig retries a failing URL, saying so each time, until it answers.
func TestFetchConfigRetries(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "# from the URL\nsoftware = from-url\n")
	}))
	defer srv.Close()
	var log []string
	logf := func(format string, args ...any) { log = append(log, fmt.Sprintf(format, args...)) }
	got, err := fetchConfig(t.Context(), srv.URL, logf)
	if err != nil {
		t.Fatal(err)
	}
	want := []relay.Setting{{Key: "software", Value: "from-url", Source: srv.URL + ":2"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fetchConfig (-want +got):\n%s", diff)
	}
	if len(log) != 2 || !strings.Contains(log[0], "503") || !strings.Contains(log[1], "retrying in 2s") {
		t.Errorf("fetchConfig logged %q, want two retries with the status and a growing backoff", log)
	}
}
