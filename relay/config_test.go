package relay

import (
	"flag"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func addrs(s ...string) []netip.AddrPort {
	var a []netip.AddrPort
	for _, v := range s {
		a = append(a, netip.MustParseAddrPort(v))
	}
	return a
}

func parse(t *testing.T, args ...string) Config {
	t.Helper()
	var c Config
	fs := NewFlagSet(&c)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("Parse(%q) = %v, want nil", args, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Parse(%q) then Validate() = %v, want nil", args, err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	c := parse(t)
	got := []any{c.Listen, c.RelayAddresses, c.Software, c.Auth.Realm, c.PortMin, c.PortMax, c.DefaultLifetime, c.MaxLifetime,
		c.PermissionLifetime, c.ChannelLifetime, c.Control, c.Metrics, c.LogLevel, c.Workers, c.MaxPermissions}
	want := []any{addrs("0.0.0.0:3478"), []netip.Addr(nil), "relaybox", "relaybox", uint16(49152), uint16(65535), 600 * time.Second, 3600 * time.Second,
		300 * time.Second, 600 * time.Second, "/run/relaybox/relay.sock", "", slog.LevelInfo, 0, 1024}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

// TestEveryKey sets every key and checks where it lands.
func TestEveryKey(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secrets")
	os.WriteFile(secretFile, []byte("# rotated monthly\nfile-secret\n"), 0o600)
	c := parse(t,
		"--listen", "127.0.0.1:3478, [::1]:3478", "--listen", "[::ffff:127.0.0.2]:5349",
		"--relay-address", "198.18.0.1", "--relay-address", "2001:2::1",
		"--port-range", "40000-40100", "--workers", "3",
		"--realm", "turn.example.com", "--user", "alice:pw:with:colons", "--user", "bob:x",
		"--auth-secret", "s1,with,commas", "--auth-secret", "s2", "--auth-secret-file", secretFile,
		"--nonce-key", "0123456789abcdef",
		"--allow-peer", "198.18.0.0/15,2001:2::/48", "--allow-peer", "10.0.0.1", "--deny-peer", "198.18.5.0/24",
		"--max-allocations", "1000", "--user-quota", "10", "--max-permissions", "20",
		"--unauth-rate", "5", "--unauth-burst", "7", "--unauth-amplification", "2", "--max-sources", "100",
		"--bandwidth", "2M",
		"--lifetime", "60", "--max-lifetime", "10m", "--permission-lifetime", "100s", "--channel-lifetime", "200", "--nonce-lifetime", "1h",
		"--software", "box 1.0", "--metrics", "127.0.0.1:9100", "--control", "/tmp/r.sock", "--log-level", "debug",
	)
	got := []any{
		joinAddrs(c.Listen), joinIPs(c.RelayAddresses), c.PortMin, c.PortMax, c.Workers,
		c.Auth.Realm, c.Auth.Users, c.Auth.Secrets, c.AuthSecretFile, string(c.NonceKey),
		joinPrefixes(c.AllowPeers), joinPrefixes(c.DenyPeers),
		c.MaxAllocations, c.UserQuota, c.MaxPermissions, c.UnauthRate, c.UnauthBurst, c.Amplification, c.MaxSources, c.Bandwidth,
		c.DefaultLifetime, c.MaxLifetime, c.PermissionLifetime, c.ChannelLifetime, c.NonceLifetime,
		c.Software, c.Metrics, c.Control, c.LogLevel,
	}
	want := []any{
		"127.0.0.1:3478,[::1]:3478,127.0.0.2:5349", "198.18.0.1,2001:2::1", uint16(40000), uint16(40100), 3,
		"turn.example.com", []string{"alice:pw:with:colons", "bob:x"}, []string{"s1,with,commas", "s2"}, secretFile, "0123456789abcdef",
		"198.18.0.0/15,2001:2::/48,10.0.0.1/32", "198.18.5.0/24",
		1000, 10, 20, 5, 7, 2, 100, int64(2_000_000),
		time.Minute, 10 * time.Minute, 100 * time.Second, 200 * time.Second, time.Hour,
		"box 1.0", "127.0.0.1:9100", "/tmp/r.sock", slog.LevelDebug,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("every key (-want +got):\n%s", diff)
	}
}

// TestSetErrors is what PID 1 sees when it checks relaybox.<key>=<value>
// from the kernel command line: each error names the key and says what is
// valid, and never shows a secret.
func TestSetErrors(t *testing.T) {
	for _, tt := range []struct {
		key, value string
		want       string
	}{
		{"listen", "1.2.3", `listen "1.2.3": want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478`},
		{"listen", "", `listen "": want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478`},
		{"listen", "0.0.0.0", `listen "0.0.0.0": want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478`},
		{"listen", "0.0.0.0:3478,", `listen "": want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478`},
		{"listen", "224.0.0.1:3478", `listen 224.0.0.1:3478: a relay cannot serve on a multicast or broadcast address; want a unicast or wildcard ADDR:PORT such as 0.0.0.0:3478`},
		{"relay-address", "relay.example.org", `relay-address "relay.example.org": want an IPv4 or IPv6 address such as 203.0.113.7 or 2001:db8::7`},
		{"relay-address", "0.0.0.0", `relay-address 0.0.0.0: want a unicast address of this host that peers can reach, not a wildcard, multicast or broadcast one`},
		{"relay-address", "fe80::1%eth0", `relay-address fe80::1%eth0: a relay address cannot have a zone; want a global address`},
		{"port-range", "5000", `port-range "5000": want MIN-MAX with 1 <= MIN <= MAX <= 65535, such as 49152-65535`},
		{"port-range", "6000-5000", `port-range "6000-5000": want MIN-MAX with 1 <= MIN <= MAX <= 65535, such as 49152-65535`},
		{"port-range", "0-10", `port-range "0-10": want MIN-MAX with 1 <= MIN <= MAX <= 65535, such as 49152-65535`},
		{"workers", "-1", `workers "-1": want a whole number from 0 to 256 (0 means the number of CPUs)`},
		{"realm", "", `realm: empty; want the relay's domain name, such as turn.example.com`},
		{"realm", `a"b`, `realm "a\"b": quotes and backslashes are not allowed (RFC 8489 quoted-string)`},
		{"user", "alice", `user "alice": want name:password with neither part empty`},
		{"user", "alice:", `user "alice:…": want name:password with neither part empty`},
		{"auth-secret", "", `auth-secret: empty; want a shared secret of at least one character (prefer 32 random bytes)`},
		{"auth-secret-file", "/nonexistent/secrets", `auth-secret-file: open /nonexistent/secrets: no such file or directory`},
		{"nonce-key", "short-secret", `nonce-key: 12 bytes is too short; want at least 16 random bytes, the same on every relay behind one name`},
		{"allow-peer", "10.0.0.1/8", `allow-peer 10.0.0.1/8: has host bits set; did you mean 10.0.0.0/8?`},
		{"allow-peer", "ten", `allow-peer "ten": want a CIDR such as 198.18.0.0/15 or 2001:db8::/32, or one address`},
		{"deny-peer", "1.2.3.0/33", `deny-peer "1.2.3.0/33": want a CIDR such as 198.18.0.0/15 or 2001:db8::/32, or one address`},
		{"max-allocations", "-5", `max-allocations "-5": want a whole number from 0 to 2147483647`},
		{"user-quota", "many", `user-quota "many": want a whole number from 0 to 2147483647`},
		{"bandwidth", "10Mbit", `bandwidth "10Mbit": want bytes per second, a whole number with an optional K, M or G suffix (x1000) such as 1M; 0 means no limit`},
		{"lifetime", "0", `lifetime "0": want a duration of whole seconds, at least 1s`},
		{"max-lifetime", "1.5s", `max-lifetime "1.5s": want a duration of whole seconds, at least 1s`},
		{"nonce-lifetime", "soon", `nonce-lifetime "soon": want a duration of whole seconds such as 600s, 10m or 600`},
		{"metrics", "localhost:9090", `metrics "localhost:9090": want ADDR:PORT such as 127.0.0.1:9090, [::]:9090 or :9090, or nothing to serve no metrics`},
		{"control", "relay.sock", `control "relay.sock": want an absolute path such as /run/relaybox/relay.sock, or nothing for no control socket`},
		{"log-level", "verbose", `log-level "verbose": want one of debug, info, warn, error`},
		{"software", strings.Repeat("x", 128), `software: 128 characters is too long; want fewer than 128 (RFC 8489)`},
		{"config", "", "config: empty; want the path of a config file of `key = value` lines"},
		{"xdp", "", "xdp: empty; want a network interface name such as eth0"},
		{"xdp", "eth0/1", `xdp "eth0/1": not a network interface name; want one such as eth0 (at most 15 characters, no '/', ':' or spaces)`},
		{"xdp", "a-very-long-interface", `xdp "a-very-long-interface": not a network interface name; want one such as eth0 (at most 15 characters, no '/', ':' or spaces)`},
		{"xdp-mode", "fast", `xdp-mode: unknown xdp mode "fast": want off, generic, native or auto`},
		{"xdp-maps", "relaybox", `xdp-maps "relaybox": want an absolute path on a bpf filesystem, such as /sys/fs/bpf/relaybox`},
	} {
		var c Config
		fs := NewFlagSet(&c)
		err := fs.Set(tt.key, tt.value)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Set(%q, %q) = %v, want %q", tt.key, tt.value, err, tt.want)
		}
		if err != nil && SecretKeys[tt.key] && len(tt.value) > 6 && strings.Contains(err.Error(), tt.value) {
			t.Errorf("Set(%q, ...) = %v: shows the secret", tt.key, err)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string // "" for valid
	}{
		{"defaults", nil, ""},
		{"both wildcards", []string{"--listen", "0.0.0.0:3478,[::]:3478"}, ""},
		{"ephemeral ports never conflict", []string{"--listen", "127.0.0.1:0,127.0.0.1:0"}, ""},
		{"duplicate", []string{"--listen", "[::1]:3478,[::1]:3478"}, "listen [::1]:3478: given twice; give each address once"},
		{
			"specific under wildcard", []string{"--listen", "127.0.0.1:3478,0.0.0.0:3478"},
			"listen 127.0.0.1:3478: overlaps listen 0.0.0.0:3478, which already covers every IPv4 address on that port; give only one of them",
		},
		{"two IPv4 relay addresses", []string{"--relay-address", "198.18.0.1,198.18.0.2"}, "relay-address 198.18.0.2: a second IPv4 address; give at most one IPv4 and one IPv6"},
		{"listen port in the range", []string{"--listen", "0.0.0.0:50000"}, "port-range 49152-65535: contains the listen port of 0.0.0.0:50000; move one of them"},
		{"lifetimes", []string{"--lifetime", "2h"}, "max-lifetime 1h0m0s: shorter than lifetime 2h0m0s; want max-lifetime >= lifetime"},
		{"xdp", []string{"--xdp", "eth0,eth1", "--xdp-mode", "native", "--xdp-maps", "/sys/fs/bpf/relaybox", "--listen", "0.0.0.0:3478,[::]:3478"}, ""},
		{"xdp maps alone", []string{"--xdp-maps", "/sys/fs/bpf/relaybox"}, ""},
		{"xdp twice", []string{"--xdp", "eth0", "--xdp", "eth0"}, "xdp eth0: given twice; give each interface once"},
		{
			"xdp mode without an interface", []string{"--xdp-mode", "generic", "--xdp-maps", "/sys/fs/bpf/relaybox"},
			"xdp-mode generic: no interface to attach to; give xdp too (on the appliance, init attaches XDP: set its xdp key to generic instead)",
		},
		{"xdp off alone", []string{"--xdp-mode", "off"}, ""},
		{
			"xdp with two listen ports", []string{"--xdp", "eth0", "--listen", "0.0.0.0:3478,[::]:3479"},
			"listen 0.0.0.0:3478 and [::]:3479: the XDP data plane takes ChannelData on one port; give every listen address the same port, not 0",
		},
		{"xdp off with two listen ports", []string{"--xdp", "eth0", "--xdp-mode", "off", "--listen", "0.0.0.0:3478,[::]:3479"}, ""},
	} {
		var c Config
		if err := NewFlagSet(&c).Parse(tt.args); err != nil {
			t.Fatalf("%s: Parse(%q) = %v", tt.name, tt.args, err)
		}
		err := c.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%s: Validate() = %q, want %q", tt.name, got, tt.want)
		}
	}
	var zero Config
	if err := zero.Validate(); err == nil || !strings.Contains(err.Error(), "listen: want at least one") {
		t.Errorf("Config{}.Validate() = %v, want an error about listen", err)
	}
}

// TestEveryKeyIsAFlag: every key of proto.Config (named in its field
// comments) and of the I/O layer is a flag, and the example config file
// shows each one.
func TestEveryKeyIsAFlag(t *testing.T) {
	keys := []string{
		// proto.Config
		"realm", "user", "auth-secret", "software", "listen", "relay-address", "port-range", "allow-peer", "deny-peer",
		"max-allocations", "user-quota", "max-permissions", "bandwidth", "unauth-rate", "unauth-burst",
		"unauth-amplification", "max-sources", "lifetime", "max-lifetime", "permission-lifetime", "channel-lifetime",
		"nonce-lifetime", "nonce-key",
		// the I/O layer
		"auth-secret-file", "metrics", "control", "workers", "log-level", "config",
		"xdp", "xdp-mode", "xdp-maps",
	}
	src, err := os.ReadFile("proto/config.go")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("relaybox.conf.example")
	if err != nil {
		t.Fatal(err)
	}
	fs := NewFlagSet(new(Config))
	for _, k := range keys {
		if fs.Lookup(k) == nil {
			t.Errorf("key %q is not a flag", k)
		}
		if k != "config" && !strings.Contains(string(example), "\n# "+k+" = ") && !strings.Contains(string(example), "\n"+k+" = ") {
			t.Errorf("relaybox.conf.example does not show key %q", k)
		}
	}
	for _, k := range keys[:23] {
		if !strings.Contains(string(src), k) {
			t.Errorf("proto/config.go does not name key %q: is the list above out of date?", k)
		}
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n != len(keys) {
		t.Errorf("%d flags, want the %d keys listed here: add a new key to this test and to relaybox.conf.example", n, len(keys))
	}
}

func TestFlagDefaultsInUsage(t *testing.T) {
	fs := NewFlagSet(new(Config))
	var usage strings.Builder
	fs.SetOutput(&usage)
	fs.PrintDefaults()
	for _, want := range []string{"-listen ADDR:PORT", "(default 0.0.0.0:3478)", "-port-range MIN-MAX", "(default 49152-65535)",
		"-lifetime duration", "(default 600s)", "-realm name", "(default relaybox)", "-user name:password", "-auth-secret secret"} {
		if !strings.Contains(usage.String(), want) {
			t.Errorf("PrintDefaults() = %q, want it to contain %q", usage.String(), want)
		}
	}
}

func TestConfigLogValue(t *testing.T) {
	c := parse(t, "--listen", "0.0.0.0:3478,[::]:3478", "--user", "alice:topsecret", "--auth-secret", "hush-hush", "--nonce-key", "0123456789abcdefXYZ")
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("config", "relay", c)
	for _, want := range []string{"relay.listen=0.0.0.0:3478,[::]:3478", "relay.relay-address=auto", "relay.users=1", "relay.auth-secrets=1", "relay.realm=relaybox"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("log of config = %q, want it to contain %q", b.String(), want)
		}
	}
	for _, secret := range []string{"topsecret", "hush-hush", "0123456789abcdef"} {
		if strings.Contains(b.String(), secret) {
			t.Errorf("log of config = %q: shows a secret", b.String())
		}
	}
}

func TestFlagSetIsFlagSet(t *testing.T) {
	var _ *flag.FlagSet = NewFlagSet(new(Config))
}
