package pid1

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaybox/relaybox/relay"
)

// The shell's status and config files: the status lines with their time,
// the settings with their sources, and no secret.
func TestWriteRunFiles(t *testing.T) {
	dir := t.TempDir()
	b := &box{
		console:    &console{},
		shellFiles: dir,
		relayHeld:  "the configuration has errors (see the log); fix them and reboot",
		cfg: Config{Settings: []relay.Setting{
			{Key: "ip", Value: "198.18.0.2::198.18.0.1:255.255.255.0::eth0:off", Source: "kernel command line"},
			{Key: "auth-secret", Value: "hunter2", Source: "RELAYBOX partition relaybox.conf:3"},
		}},
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := b.writeRunFiles(now); err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"as of 2025-01-02 03:04:05 UTC",
		"\nrelaybox " + Version + " on ",
		"\nxdp=none:off\n",
		"\nrelay not started: the configuration has errors",
	} {
		if !strings.Contains(string(status), want) {
			t.Errorf("status file:\n%s\nwant %q in it", status, want)
		}
	}
	config, err := os.ReadFile(filepath.Join(dir, "config"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ip = 198.18.0.2::198.18.0.1:255.255.255.0::eth0:off",
		"# kernel command line\n",
		"auth-secret = (secret)",
		"# RELAYBOX partition relaybox.conf:3\n",
	} {
		if !strings.Contains(string(config), want) {
			t.Errorf("config file:\n%s\nwant %q in it", config, want)
		}
	}
	if strings.Contains(string(config), "hunter2") {
		t.Errorf("config file:\n%s\nshows the secret", config)
	}
	// Rewritten in place, no temporary file left behind.
	if err := b.writeRunFiles(now.Add(runFilesEvery)); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(names) != 2 {
		t.Errorf("files in the run directory: %q, want status and config", names)
	}
}
