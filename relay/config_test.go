package relay

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func addrs(s ...string) []netip.AddrPort {
	var a []netip.AddrPort
	for _, v := range s {
		a = append(a, netip.MustParseAddrPort(v))
	}
	return a
}

// configCmp compares netip.AddrPort by value (its fields are unexported).
var configCmp = cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })

func TestParseFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want Config
	}{
		{nil, Config{Listen: addrs("0.0.0.0:3478"), Software: "relaybox", LogLevel: slog.LevelInfo}},
		{
			[]string{"--listen", "[::]:3478"},
			Config{Listen: addrs("[::]:3478"), Software: "relaybox", LogLevel: slog.LevelInfo},
		},
		{
			[]string{"--listen=0.0.0.0:3478", "--listen", "[::]:3478", "--software=", "--log-level=debug"},
			Config{Listen: addrs("0.0.0.0:3478", "[::]:3478"), Software: "", LogLevel: slog.LevelDebug},
		},
		{
			[]string{"-listen", "127.0.0.1:3478, [::1]:3478", "-listen", "[::ffff:127.0.0.2]:5349", "-log-level", "WARN"},
			Config{Listen: addrs("127.0.0.1:3478", "[::1]:3478", "127.0.0.2:5349"), Software: "relaybox", LogLevel: slog.LevelWarn},
		},
		{
			[]string{"--software", "relaybox 1.0 (fleet eu-1)", "--log-level", "error"},
			Config{Listen: addrs("0.0.0.0:3478"), Software: "relaybox 1.0 (fleet eu-1)", LogLevel: slog.LevelError},
		},
		{
			[]string{"--listen", "[fe80::1%eth0]:3478"},
			Config{Listen: addrs("[fe80::1%eth0]:3478"), Software: "relaybox", LogLevel: slog.LevelInfo},
		},
	} {
		var c Config
		fs := NewFlagSet(&c)
		if err := fs.Parse(tt.args); err != nil {
			t.Errorf("Parse(%q) = %v, want nil", tt.args, err)
			continue
		}
		if diff := cmp.Diff(tt.want, c, configCmp); diff != "" {
			t.Errorf("Parse(%q) config mismatch (-want +got):\n%s", tt.args, diff)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("Parse(%q) then Validate() = %v, want nil", tt.args, err)
		}
	}
}

// TestSetErrors is what PID 1 sees when it checks relaybox.<key>=<value>
// from the kernel command line: each error names the key and says what is valid.
func TestSetErrors(t *testing.T) {
	for _, tt := range []struct {
		key, value string
		want       string
	}{
		{"listen", "1.2.3", `listen "1.2.3": want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478`},
		{"listen", "", `listen "": want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478`},
		{"listen", "0.0.0.0", `listen "0.0.0.0": want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478`},
		{"listen", "relay.example.org:3478", `listen "relay.example.org:3478": want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478`},
		{"listen", "::1:3478", `listen "::1:3478": want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478`},
		{"listen", "0.0.0.0:70000", `listen "0.0.0.0:70000": want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478`},
		{"listen", "0.0.0.0:3478,", `listen "": want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478`},
		{"listen", "224.0.0.1:3478", `listen 224.0.0.1:3478: a relay cannot serve on a multicast or broadcast address; want a unicast or wildcard ADDR:PORT such as 0.0.0.0:3478`},
		{"listen", "[ff02::1]:3478", `listen [ff02::1]:3478: a relay cannot serve on a multicast or broadcast address; want a unicast or wildcard ADDR:PORT such as 0.0.0.0:3478`},
		{"log-level", "verbose", `log-level "verbose": want one of debug, info, warn, error`},
		{"log-level", "INFO+2", `log-level "INFO+2": want one of debug, info, warn, error`},
		{"software", strings.Repeat("x", 128), `software: 128 characters is too long; want fewer than 128 (RFC 8489)`},
		{"software", "\xff", `software "\xff": want UTF-8 text`},
	} {
		var c Config
		fs := NewFlagSet(&c)
		err := fs.Set(tt.key, tt.value)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Set(%q, %q) = %v, want %q", tt.key, tt.value, err, tt.want)
		}
	}
}

func TestParseBadFlag(t *testing.T) {
	var c Config
	fs := NewFlagSet(&c)
	fs.SetOutput(&strings.Builder{})
	err := fs.Parse([]string{"--listen", "1.2.3"})
	if err == nil || !strings.Contains(err.Error(), `-listen: listen "1.2.3": want ADDR:PORT`) {
		t.Errorf("Parse(--listen 1.2.3) = %v, want an error naming listen", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    Config
		want string // "" for valid
	}{
		{"defaults", Config{Listen: addrs("0.0.0.0:3478"), Software: "relaybox"}, ""},
		{"both wildcards", Config{Listen: addrs("0.0.0.0:3478", "[::]:3478")}, ""},
		{"ephemeral ports never conflict", Config{Listen: addrs("127.0.0.1:0", "127.0.0.1:0")}, ""},
		{"wildcard and specific on other ports", Config{Listen: addrs("0.0.0.0:3478", "127.0.0.1:3479")}, ""},
		{"no listen", Config{}, "listen: want at least one ADDR:PORT such as 0.0.0.0:3478"},
		{"zero address", Config{Listen: []netip.AddrPort{{}}}, "listen: empty address: want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478"},
		{"duplicate", Config{Listen: addrs("[::1]:3478", "[::1]:3478")}, "listen [::1]:3478: given twice; give each address once"},
		{
			"specific under wildcard",
			Config{Listen: addrs("127.0.0.1:3478", "0.0.0.0:3478")},
			"listen 127.0.0.1:3478: overlaps listen 0.0.0.0:3478, which already covers every IPv4 address on that port; give only one of them",
		},
		{
			"specific under v6 wildcard",
			Config{Listen: addrs("[::]:3478", "[::1]:3478")},
			"listen [::1]:3478: overlaps listen [::]:3478, which already covers every IPv6 address on that port; give only one of them",
		},
		{"log level", Config{Listen: addrs("0.0.0.0:3478"), LogLevel: 2}, "log-level 2: want one of debug, info, warn, error"},
		{
			"software",
			Config{Listen: addrs("0.0.0.0:3478"), Software: strings.Repeat("é", 200)},
			"software: 200 characters is too long; want fewer than 128 (RFC 8489)",
		},
	} {
		err := tt.c.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%s: Validate(%+v) = %q, want %q", tt.name, tt.c, got, tt.want)
		}
	}
}

func TestFlagDefaultsInUsage(t *testing.T) {
	var c Config
	fs := NewFlagSet(&c)
	var usage strings.Builder
	fs.SetOutput(&usage)
	fs.PrintDefaults()
	for _, key := range []string{"-listen ADDR:PORT", "(default 0.0.0.0:3478)", "-software text", "(default relaybox)", "-log-level level"} {
		if !strings.Contains(usage.String(), key) {
			t.Errorf("PrintDefaults() = %q, want it to contain %q", usage.String(), key)
		}
	}
}

func TestConfigLogValue(t *testing.T) {
	c := Config{Listen: addrs("0.0.0.0:3478", "[::]:3478"), Software: "relaybox", LogLevel: slog.LevelWarn}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})).Info("config", "relay", c)
	want := "level=INFO msg=config relay.listen=0.0.0.0:3478,[::]:3478 relay.software=relaybox relay.log-level=warn\n"
	if got := b.String(); got != want {
		t.Errorf("log of %+v = %q, want %q", c, got, want)
	}
}
