package relay

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadConfigFile(t *testing.T) {
	const file = `# relaybox.conf
listen = 0.0.0.0:3478
  listen=[::]:3478

software = "relay box "
auth-secret = s3cr=t#1
empty =
`
	got, err := ReadConfigFile(strings.NewReader(file), "relaybox.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := []Setting{
		{"listen", "0.0.0.0:3478", "relaybox.conf:2"},
		{"listen", "[::]:3478", "relaybox.conf:3"},
		{"software", "relay box ", "relaybox.conf:5"},
		{"auth-secret", "s3cr=t#1", "relaybox.conf:6"},
		{"empty", "", "relaybox.conf:7"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadConfigFile (-want +got):\n%s", diff)
	}
}

func TestReadConfigFileErrors(t *testing.T) {
	const file = "listen 0.0.0.0:3478\n= value\nsoft ware = x\nok = 1\n"
	got, err := ReadConfigFile(strings.NewReader(file), "f")
	for _, want := range []string{"f:1:", "f:2:", "f:3:", "key = value"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadConfigFile error %v, want it to mention %q", err, want)
		}
	}
	if len(got) != 1 || got[0].Key != "ok" {
		t.Errorf("ReadConfigFile kept %v, want the one good line", got)
	}
}

func TestMergeSettings(t *testing.T) {
	file := []Setting{{"listen", "a", "f:1"}, {"listen", "b", "f:2"}, {"software", "x", "f:3"}}
	url := []Setting{{"software", "y", "url"}}
	cmdline := []Setting{{"listen", "c", "cmdline"}}
	want := []Setting{{"software", "y", "url"}, {"listen", "c", "cmdline"}}
	if diff := cmp.Diff(want, MergeSettings(file, url, cmdline)); diff != "" {
		t.Errorf("MergeSettings (-want +got):\n%s", diff)
	}
}

func TestRedacted(t *testing.T) {
	for _, tc := range []struct {
		s    Setting
		want string
	}{
		{Setting{Key: "auth-secret", Value: "hunter2"}, "auth-secret = (secret)"},
		{Setting{Key: "user", Value: "alice:pw"}, "user = (secret)"},
		{Setting{Key: "nonce-key", Value: "0123456789abcdef"}, "nonce-key = (secret)"},
		{Setting{Key: "listen", Value: "[::]:3478"}, "listen = [::]:3478"},
	} {
		if got := tc.s.Redacted(); got != tc.want {
			t.Errorf("%+v.Redacted() = %q, want %q", tc.s, got, tc.want)
		}
	}
}

// TestApplySettingsStrict: unknown keys and bad values are errors naming
// the key and the line, all reported at once.
func TestApplySettingsStrict(t *testing.T) {
	const file = "listen = 127.0.0.1:3478\nlisten-address = 1.2.3.4\nport-range = 10\nlifetime = forever\nuser = alice:pw\n"
	settings, err := ReadConfigFile(strings.NewReader(file), "relaybox.conf")
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	err = ApplySettings(NewFlagSet(&c), settings)
	for _, want := range []string{
		`relaybox.conf:2: unknown key "listen-address"; the keys are allow-peer, auth-secret,`,
		`relaybox.conf:3: port-range "10": want MIN-MAX`,
		`relaybox.conf:4: lifetime "forever": want a duration`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ApplySettings error %v, want it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "relaybox.conf:1") || strings.Contains(err.Error(), "relaybox.conf:5") {
		t.Errorf("ApplySettings error %v names good lines", err)
	}
}

func TestParseArgs(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "relaybox.conf")
	os.WriteFile(file, []byte("listen = 127.0.0.1:3478\nlisten = [::1]:3478\nrealm = file.example\nsoftware = from file\nuser = alice:pw\n"), 0o600)

	c, err := ParseArgs([]string{"--config", file, "--listen", "127.0.0.2:3478", "--software", "from flags"})
	if err != nil {
		t.Fatal(err)
	}
	got := []any{joinAddrs(c.Listen), c.Auth.Realm, c.Software, c.Auth.Users, c.ConfigFile}
	want := []any{"127.0.0.2:3478", "file.example", "from flags", []string{"alice:pw"}, file}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flags over file (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		file string
		args []string
		want string
	}{
		{"bogus = 1\n", nil, `relaybox.conf:1: unknown key "bogus"`},
		{"listen = nowhere\n", nil, `relaybox.conf:1: listen "nowhere": want ADDR:PORT`},
		{"config = /etc/other.conf\n", nil, "relaybox.conf:1: config: a config file cannot name another"},
		{"listen\n", nil, "relaybox.conf:1: want `key = value`"},
		{"", []string{"--listen", "x"}, `command line: listen "x": want ADDR:PORT`},
		{"", []string{"--nope", "x"}, "flag provided but not defined: -nope"},
		{"", []string{"stray"}, `unexpected argument "stray"`},
		{"lifetime = 7200\n", nil, "max-lifetime 1h0m0s: shorter than lifetime 2h0m0s"},
	} {
		os.WriteFile(file, []byte(tc.file), 0o600)
		_, err := ParseArgs(append([]string{"--config", file}, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseArgs with file %q and %q = %v, want an error containing %q", tc.file, tc.args, err, tc.want)
		}
	}
	if _, err := ParseArgs([]string{"--config", filepath.Join(dir, "missing.conf")}); err == nil || !strings.Contains(err.Error(), "config: open") {
		t.Errorf("ParseArgs with a missing file = %v, want an error", err)
	}
}

var keyLine = regexp.MustCompile(`^[a-z][a-z-]* = `)

// TestExampleConfig: the example file sets nothing as shipped, and
// uncommenting every key line gives a valid configuration.
func TestExampleConfig(t *testing.T) {
	b, err := os.ReadFile("relaybox.conf.example")
	if err != nil {
		t.Fatal(err)
	}
	settings, err := ReadConfigFile(bytes.NewReader(b), "relaybox.conf.example")
	if err != nil || len(settings) != 0 {
		t.Fatalf("example as shipped: %v settings, %v; want none, nil", settings, err)
	}
	secrets := filepath.Join(t.TempDir(), "secrets")
	os.WriteFile(secrets, []byte("s\n"), 0o600)
	var lines []string
	for _, line := range strings.Split(string(b), "\n") {
		if k, ok := strings.CutPrefix(line, "# "); ok && keyLine.MatchString(k) {
			k = strings.Replace(k, "/etc/relaybox/secrets", secrets, 1)
			lines = append(lines, k)
		}
	}
	settings, err = ReadConfigFile(strings.NewReader(strings.Join(lines, "\n")), "uncommented")
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	if err := ApplySettings(NewFlagSet(&c), settings); err != nil {
		t.Fatalf("uncommented example: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("uncommented example: %v", err)
	}
	if len(settings) < 29 {
		t.Errorf("uncommented example has %d settings, want every key", len(settings))
	}
}
