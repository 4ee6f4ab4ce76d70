package relay

import (
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
		{Setting{Key: "listen", Value: "[::]:3478"}, "listen = [::]:3478"},
	} {
		if got := tc.s.Redacted(); got != tc.want {
			t.Errorf("%+v.Redacted() = %q, want %q", tc.s, got, tc.want)
		}
	}
}
