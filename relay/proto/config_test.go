package proto

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestConfigErrorsNameTheKey: every invalid value is reported, starting
// with the key an operator has to fix.
func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no realm", func(c *Config) { c.Auth.Realm = "" }, "realm: empty"},
		{"bad user", func(c *Config) { c.Auth.Users = []string{"nopassword"} }, `user "nopassword"`},
		{"empty secret", func(c *Config) { c.Auth.Secrets = []string{""} }, "auth-secret #1: empty"},
		{"no relay address", func(c *Config) { c.RelayAddresses = nil }, "relay-address: none given"},
		{"two IPv4 relay addresses", func(c *Config) { c.RelayAddresses = []netip.Addr{relay4, netip.MustParseAddr("198.18.0.2")} }, "relay-address 198.18.0.2: a second IPv4 address"},
		{"wildcard relay address", func(c *Config) { c.RelayAddresses = []netip.Addr{netip.IPv4Unspecified()} }, "relay-address 0.0.0.0: want a unicast address"},
		{"multicast relay address", func(c *Config) { c.RelayAddresses = []netip.Addr{netip.MustParseAddr("ff02::1")} }, "relay-address ff02::1"},
		{"inverted port range", func(c *Config) { c.PortMin, c.PortMax = 60000, 50000 }, "port-range 60000-50000"},
		{"port range over the listen port", func(c *Config) { c.PortMin, c.PortMax = 3000, 4000 }, "port-range 3000-4000: contains the listen port of 198.18.0.1:3478"},
		{"masked allow-peer", func(c *Config) { c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("198.18.0.1/15")} }, "allow-peer 198.18.0.1/15: host bits set"},
		{"deny-peer", func(c *Config) { c.DenyPeers = []netip.Prefix{{}} }, "deny-peer: empty or invalid prefix"},
		{"negative quota", func(c *Config) { c.UserQuota = -1 }, "user-quota -1"},
		{"negative max-allocations", func(c *Config) { c.MaxAllocations = -1 }, "max-allocations -1"},
		{"negative bandwidth", func(c *Config) { c.Bandwidth = -5 }, "bandwidth -5"},
		{"negative unauth-rate", func(c *Config) { c.UnauthRate = -1 }, "unauth-rate -1"},
		{"fractional lifetime", func(c *Config) { c.DefaultLifetime = 1500 * time.Millisecond }, "lifetime 1.5s: want a whole number of seconds"},
		{"max below default", func(c *Config) { c.MaxLifetime = 300 * time.Second }, "max-lifetime 5m0s: shorter than lifetime 10m0s"},
		{"short nonce key", func(c *Config) { c.NonceKey = []byte("short") }, "nonce-key: 5 bytes is too short"},
		{"long software", func(c *Config) { c.Software = strings.Repeat("x", 128) }, "software: want UTF-8 text of fewer than 128 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.edit(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error containing %q", err, tc.want)
			}
			for line := range strings.SplitSeq(err.Error(), "\n") {
				if key, _, _ := strings.Cut(line, " "); !strings.HasPrefix(tc.want, strings.TrimSuffix(key, ":")) {
					t.Errorf("error line %q does not start with the key of %q", line, tc.want)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"lifetime", c.DefaultLifetime, 600 * time.Second},
		{"max-lifetime", c.MaxLifetime, 3600 * time.Second},
		{"permission-lifetime", c.PermissionLifetime, 300 * time.Second},
		{"channel-lifetime", c.ChannelLifetime, 600 * time.Second},
		{"port-range", [2]uint16{c.PortMin, c.PortMax}, [2]uint16{49152, 65535}},
		{"unauth-amplification", c.Amplification, 1},
	} {
		if tc.got != tc.want {
			t.Errorf("default %s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if err := testConfig().Validate(); err != nil {
		t.Errorf("testConfig().Validate() = %v", err)
	}
}
