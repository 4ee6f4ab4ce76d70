package relay

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/relaybox/relaybox/bpf"
	"github.com/relaybox/relaybox/relay/auth"
	"github.com/relaybox/relaybox/relay/policy"
	"github.com/relaybox/relaybox/relay/proto"
)

// defaultListen is where the relay listens when no listen address is given:
// the STUN/TURN port of RFC 8489 on every IPv4 address.
var defaultListen = netip.MustParseAddrPort("0.0.0.0:3478")

// Defaults of the keys that are the I/O layer's rather than the core's.
const (
	// DefaultRealm is the realm when none is configured. Clients take the
	// realm from the relay's challenge, so it matters only to an operator
	// who shares static users' keys with another server.
	DefaultRealm = "relaybox"
	// DefaultControl is where the control socket is made.
	DefaultControl = "/run/relaybox/relay.sock"
	// maxWorkers bounds the workers key: more I/O goroutines than that
	// only add lock contention.
	maxWorkers = 256
	// maxSocketPath is sun_path's size less its terminating NUL.
	maxSocketPath = 107
)

// maxSoftwareChars is the SOFTWARE limit of RFC 8489 section 14.14: fewer
// than 128 characters.
const maxSoftwareChars = 127

// Config holds the relay's settings. Every setting is a key that can be
// given as a flag of the same name (--listen), as a line of a config file
// (listen = ...; see ReadConfigFile) or, on the appliance, as a kernel
// command-line parameter (relaybox.listen=...); see RegisterFlags for the
// list, and relaybox.conf.example beside this file for every key explained.
//
// The TURN core's settings are its proto.Config, whose field comments name
// their keys; the rest belong to the I/O layer around it.
type Config struct {
	proto.Config

	// AuthSecretFile names a file of TURN REST secrets, one per line (blank
	// lines and lines starting with # are skipped), accepted along with
	// the auth-secret keys. The relay reads it again on SIGHUP, so a
	// secret can be rolled without a restart. Key: auth-secret-file.
	AuthSecretFile string
	// Metrics is the TCP address of the HTTP server for /metrics,
	// /healthz and /readyz; empty means none. Key: metrics.
	Metrics string
	// Control is the path of the control socket that `relay status`
	// talks to; empty means none. Key: control.
	Control string
	// Workers is the number of I/O goroutines, each with its own
	// SO_REUSEPORT socket per listen address; 0 means one per CPU.
	// Key: workers.
	Workers int
	// LogLevel is the lowest level logged. Key: log-level.
	LogLevel slog.Level
	// ConfigFile is the config file the command line named. Key: config
	// (command line only).
	ConfigFile string

	// The XDP data plane (xdp.go): the kernel relays the ChannelData of
	// the channel bindings the relay writes into the XDP program's maps.

	// XDP names the interfaces the relay attaches the XDP program to
	// itself, on a host of its own: the NICs clients and peers reach it
	// by (a datagram leaving by another NIC than it came in by is
	// redirected there, which needs the program on that NIC too). It is
	// detached when the relay stops. Key: xdp (repeatable).
	XDP []string
	// XDPMode is how the program attaches to the XDP interfaces:
	// bpf.ModeAuto (native where the driver can, else generic; the
	// default that RegisterFlags sets), native or generic. bpf.ModeOff
	// turns every XDP key off: every datagram takes the user-space path.
	// Key: xdp-mode.
	XDPMode bpf.Mode
	// XDPMaps is a directory on a bpf filesystem for the program's maps.
	// With XDP, the relay pins its maps there (reusing those an earlier
	// run left), so other tools can read them. Without, the relay
	// attaches nothing: it opens the maps that another process (the
	// appliance's init) loaded, attached and pinned there, and writes its
	// bindings into them. Either way, bindings found there when the relay
	// starts are a dead relay's and are removed. Key: xdp-maps.
	XDPMaps string
}

// xdpEnabled reports whether c asks for the XDP data plane.
func (c *Config) xdpEnabled() bool {
	return c.XDPMode != bpf.ModeOff && (len(c.XDP) > 0 || c.XDPMaps != "")
}

// RegisterFlags defines one flag per config key on fs, writing parsed values
// into c. Like flag.StringVar, it stores the defaults into c first, so c is
// a complete configuration even if no flag is ever set.
//
// Every flag checks its value as it is set and returns an error that names the
// key and says what is valid: PID 1 relies on that to reject a bad
// relaybox.<key>=<value> from the kernel command line before it starts the
// relay. Repeatable keys take several values, by repeating the key or (but
// for secrets, which may hold commas) by separating them with commas; the
// first value given replaces the default.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	*c = Config{}
	c.Listen = []netip.AddrPort{defaultListen}
	c.Software = "relaybox"
	c.Auth.Realm = DefaultRealm
	c.PortMin, c.PortMax = proto.DefaultPortMin, proto.DefaultPortMax
	c.MaxPermissions = proto.DefaultMaxPermissions
	c.UnauthRate, c.UnauthBurst = proto.DefaultUnauthRate, proto.DefaultUnauthBurst
	c.Amplification = proto.DefaultAmplification
	c.MaxSources = proto.DefaultMaxSources
	c.DefaultLifetime, c.MaxLifetime = proto.DefaultLifetime, proto.DefaultMaxLifetime
	c.PermissionLifetime, c.ChannelLifetime = proto.DefaultPermissionLifetime, proto.DefaultChannelLifetime
	c.NonceLifetime = proto.DefaultNonceLifetime
	c.Control = DefaultControl
	c.LogLevel = slog.LevelInfo
	c.XDPMode = bpf.ModeAuto

	// Where the relay serves.
	fs.Var(list(&c.Listen, true, parseListen, joinAddrs), "listen",
		"UDP `ADDR:PORT` to serve STUN/TURN on, IPv4 or IPv6 ([::]:3478); repeatable")
	fs.Var(list(&c.RelayAddresses, true, parseRelayAddress, joinIPs), "relay-address",
		"`IP` allocations are made on, at most one IPv4 and one IPv6; repeatable. Default: the addresses of the listen addresses' interface, or for a wildcard listen the host's preferred global addresses")
	fs.Var(&keyFlag{get: func() string { return fmt.Sprintf("%d-%d", c.PortMin, c.PortMax) }, set: func(s string) error {
		lo, hi, err := parsePortRange(s)
		c.PortMin, c.PortMax = lo, hi
		return err
	}}, "port-range", "allocation ports `MIN-MAX`")
	fs.Var(&keyFlag{get: func() string { return strconv.Itoa(c.Workers) }, set: intSetter("workers", &c.Workers, 0, maxWorkers, "the number of CPUs")},
		"workers", "I/O goroutines, each with its own socket per listen address (`N`, 0 means one per CPU)")

	// Who may use it.
	fs.Var(&keyFlag{get: func() string { return c.Auth.Realm }, set: func(s string) error {
		if _, err := auth.NewStore(auth.Config{Realm: s}); err != nil {
			return err
		}
		c.Auth.Realm = s
		return nil
	}}, "realm", "`name` of the realm in challenges, such as turn.example.com")
	fs.Var(secretList(&c.Auth.Users, func(users []string) error {
		_, err := auth.NewStore(auth.Config{Realm: DefaultRealm, Users: users})
		return err
	}), "user", "static user `name:password`; repeatable")
	fs.Var(secretList(&c.Auth.Secrets, func(secrets []string) error {
		if secrets[len(secrets)-1] == "" {
			return errors.New("auth-secret: empty; want a shared secret of at least one character (prefer 32 random bytes)")
		}
		return nil
	}), "auth-secret", "TURN REST API shared `secret` (coturn's use-auth-secret); repeatable, every one is accepted")
	fs.Var(&keyFlag{get: func() string { return c.AuthSecretFile }, set: func(s string) error {
		if s != "" {
			if _, err := ReadSecretFile(s); err != nil {
				return err
			}
		}
		c.AuthSecretFile = s
		return nil
	}}, "auth-secret-file", "`file` of TURN REST secrets, one per line, re-read on SIGHUP")
	fs.Var(&keyFlag{get: func() string { return "" }, set: func(s string) error {
		if len(s) < 16 {
			return fmt.Errorf("nonce-key: %d bytes is too short; want at least 16 random bytes, the same on every relay behind one name", len(s))
		}
		c.NonceKey = []byte(s)
		return nil
	}}, "nonce-key", "`key` of the nonces, at least 16 bytes (default: random at each start)")

	// Which peers.
	fs.Var(list(&c.AllowPeers, true, prefixParser("allow-peer"), joinPrefixes), "allow-peer",
		"`CIDR` of peers allowed despite the default deny-list (private, loopback, ...); repeatable")
	fs.Var(list(&c.DenyPeers, true, prefixParser("deny-peer"), joinPrefixes), "deny-peer",
		"`CIDR` of peers refused, even if allowed; repeatable")

	// Quotas.
	for _, q := range []struct {
		key   string
		v     *int
		usage string
	}{
		{"max-allocations", &c.MaxAllocations, "allocations in total (`N`, 0 means no limit)"},
		{"user-quota", &c.UserQuota, "allocations per user (`N`, 0 means no limit)"},
		{"max-permissions", &c.MaxPermissions, "permissions per allocation (`N`)"},
		{"unauth-rate", &c.UnauthRate, "answers per second to unauthenticated requests, per source IP (`N`)"},
		{"unauth-burst", &c.UnauthBurst, "burst of answers to unauthenticated requests, per source IP (`N`)"},
		{"unauth-amplification", &c.Amplification, "bytes answered to unauthenticated requests per byte received, per source IP (`N`)"},
		{"max-sources", &c.MaxSources, "source IPs tracked for the unauthenticated limits (`N`)"},
	} {
		fs.Var(&keyFlag{get: func() string { return strconv.Itoa(*q.v) }, set: intSetter(q.key, q.v, 0, 1<<31-1, "")}, q.key, q.usage)
	}
	fs.Var(&keyFlag{get: func() string { return formatBandwidth(c.Bandwidth) }, set: func(s string) error {
		v, err := parseBandwidth(s)
		c.Bandwidth = v
		return err
	}}, "bandwidth", "`bytes` per second one allocation may relay, with an optional K, M or G (x1000) suffix; 0 means no limit")

	// Lifetimes.
	for _, d := range []struct {
		key   string
		v     *time.Duration
		usage string
	}{
		{"lifetime", &c.DefaultLifetime, "allocation lifetime when the client asks for none or less (`duration`, 600s or 600)"},
		{"max-lifetime", &c.MaxLifetime, "longest allocation lifetime granted (`duration`)"},
		{"permission-lifetime", &c.PermissionLifetime, "permission lifetime (`duration`)"},
		{"channel-lifetime", &c.ChannelLifetime, "channel binding lifetime (`duration`)"},
		{"nonce-lifetime", &c.NonceLifetime, "how long a nonce is accepted before the answer is 438 (`duration`)"},
	} {
		fs.Var(&keyFlag{get: func() string { return formatSeconds(*d.v) }, set: func(s string) error {
			v, err := parseSeconds(d.key, s)
			if err == nil {
				*d.v = v
			}
			return err
		}}, d.key, d.usage)
	}

	// The kernel data plane.
	fs.Var(list(&c.XDP, true, parseInterface, func(names []string) string { return strings.Join(names, ",") }), "xdp",
		"`interface` the relay attaches the XDP data plane to itself, such as eth0; repeatable (on the appliance init attaches XDP, and its xdp key is the mode)")
	fs.Var(&keyFlag{get: func() string { return c.XDPMode.String() }, set: func(s string) error {
		m, err := bpf.ParseMode(s)
		if err != nil {
			return fmt.Errorf("xdp-mode: %w", err)
		}
		c.XDPMode = m
		return nil
	}}, "xdp-mode", "how XDP attaches: auto (native, else generic), native, generic, or off for no XDP at all")
	fs.Var(&keyFlag{get: func() string { return c.XDPMaps }, set: func(s string) error {
		if err := checkXDPMaps(s); err != nil {
			return err
		}
		c.XDPMaps = s
		return nil
	}}, "xdp-maps", "`directory` on a bpf filesystem of the XDP maps: pinned there with xdp, else opened there as another process (init) pinned them")

	// Operations.
	fs.Var(&keyFlag{get: func() string { return c.Software }, set: func(s string) error {
		if err := checkSoftware(s); err != nil {
			return err
		}
		c.Software = s
		return nil
	}}, "software", "`text` of the SOFTWARE attribute in responses (fewer than 128 characters; empty leaves it out)")
	fs.Var(&keyFlag{get: func() string { return c.Metrics }, set: func(s string) error {
		if err := checkMetrics(s); err != nil {
			return err
		}
		c.Metrics = s
		return nil
	}}, "metrics", "`ADDR:PORT` of the HTTP server for /metrics (Prometheus), /healthz and /readyz; empty means none")
	fs.Var(&keyFlag{get: func() string { return c.Control }, set: func(s string) error {
		if err := checkControl(s); err != nil {
			return err
		}
		c.Control = s
		return nil
	}}, "control", "`path` of the control socket relay status talks to; empty means none")
	fs.Var(&keyFlag{get: func() string { name, _ := levelName(c.LogLevel); return name }, set: func(s string) error {
		for _, n := range levelNames {
			if strings.EqualFold(s, n.name) {
				c.LogLevel = n.level
				return nil
			}
		}
		return fmt.Errorf("log-level %q: want one of debug, info, warn, error", s)
	}}, "log-level", "lowest `level` logged: debug, info, warn or error")
	fs.Var(&keyFlag{get: func() string { return c.ConfigFile }, set: func(s string) error {
		if s == "" {
			return errors.New("config: empty; want the path of a config file of `key = value` lines")
		}
		c.ConfigFile = s
		return nil
	}}, "config", "config `file` of key = value lines (keys as these flags); flags on the command line win over its keys")
}

// NewFlagSet returns a flag set named "relay" holding c's flags, with
// ContinueOnError so that callers get an error instead of an exit. Set or
// Parse checks each value alone; call c.Validate once all are set.
func NewFlagSet(c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	c.RegisterFlags(fs)
	return fs
}

// Validate checks c as a whole: each key's value (for a Config built in code
// rather than through flags) and the checks that span several values, such as
// two listen addresses that cannot both be bound. An empty RelayAddresses is
// valid: the relay finds its addresses when it starts.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("listen: want at least one ADDR:PORT such as 0.0.0.0:3478"))
	}
	for i, a := range c.Listen {
		if err := checkListen(a); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, b := range c.Listen[:i] {
			if err := listenConflict(b, a); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := checkSoftware(c.Software); err != nil {
		errs = append(errs, err)
	}
	core := c.Config
	core.Software = "" // checked above, with the relay's wording
	if len(core.RelayAddresses) == 0 {
		// Any address stands in for the ones found at start.
		core.RelayAddresses = []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	}
	if err := core.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := checkMetrics(c.Metrics); err != nil {
		errs = append(errs, err)
	}
	if err := checkControl(c.Control); err != nil {
		errs = append(errs, err)
	}
	if err := c.checkXDP(); err != nil {
		errs = append(errs, err)
	}
	if c.Workers < 0 || c.Workers > maxWorkers {
		errs = append(errs, fmt.Errorf("workers %d: want 0 (one per CPU) to %d", c.Workers, maxWorkers))
	}
	if _, ok := levelName(c.LogLevel); !ok {
		errs = append(errs, fmt.Errorf("log-level %d: want one of debug, info, warn, error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// workers is the number of I/O goroutines c asks for.
func (c *Config) workers() int {
	if c.Workers > 0 {
		return c.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// LogValue makes a Config log as its keys, secrets left out, so PID 1 and
// the relay can record the configuration they run with.
func (c Config) LogValue() slog.Value {
	level, _ := levelName(c.LogLevel)
	relay := joinIPs(c.RelayAddresses)
	if relay == "" {
		relay = "auto"
	}
	return slog.GroupValue(
		slog.String("listen", joinAddrs(c.Listen)),
		slog.String("relay-address", relay),
		slog.String("port-range", fmt.Sprintf("%d-%d", c.PortMin, c.PortMax)),
		slog.String("realm", c.Auth.Realm),
		slog.Int("users", len(c.Auth.Users)),
		slog.Int("auth-secrets", len(c.Auth.Secrets)),
		slog.String("auth-secret-file", c.AuthSecretFile),
		slog.String("allow-peer", joinPrefixes(c.AllowPeers)),
		slog.String("deny-peer", joinPrefixes(c.DenyPeers)),
		slog.String("software", c.Software),
		slog.String("metrics", c.Metrics),
		slog.String("control", c.Control),
		slog.String("log-level", level),
		slog.String("xdp", strings.Join(c.XDP, ",")),
		slog.String("xdp-mode", c.XDPMode.String()),
		slog.String("xdp-maps", c.XDPMaps),
	)
}

// keyFlag is a flag.Value made of two functions, so that each key is its
// parse and check, next to its registration.
type keyFlag struct {
	get func() string
	set func(string) error
}

func (f *keyFlag) String() string {
	// flag.PrintDefaults calls String on a zero keyFlag.
	if f == nil || f.get == nil {
		return ""
	}
	return f.get()
}

func (f *keyFlag) Set(s string) error { return f.set(s) }

// list is a repeatable key: the first Set replaces the default, later ones
// add to it, so "--listen A --listen B" means exactly A and B. With commas,
// one value may hold several.
func list[T any](dst *[]T, commas bool, parse func(string) (T, error), format func([]T) string) flag.Value {
	set := false
	return &keyFlag{
		get: func() string { return format(*dst) },
		set: func(s string) error {
			parts := []string{s}
			if commas {
				parts = strings.Split(s, ",")
			}
			var vs []T
			for _, p := range parts {
				v, err := parse(strings.TrimSpace(p))
				if err != nil {
					return err
				}
				vs = append(vs, v)
			}
			if !set {
				*dst, set = nil, true
			}
			*dst = append(*dst, vs...)
			return nil
		},
	}
}

// secretList is a repeatable key whose values are never shown: check sees
// the list with the new value added, and rejects it or not.
func secretList(dst *[]string, check func([]string) error) flag.Value {
	return &keyFlag{
		get: func() string { return "" },
		set: func(s string) error {
			next := append(append([]string(nil), *dst...), s)
			if err := check(next); err != nil {
				return err
			}
			*dst = next
			return nil
		},
	}
}

func parseListen(s string) (netip.AddrPort, error) {
	a, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen %q: want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478", s)
	}
	// An IPv4-mapped IPv6 address means its IPv4 address: the IPv6 socket
	// would be IPV6_V6ONLY and could never receive on it.
	a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	if err := checkListen(a); err != nil {
		return netip.AddrPort{}, err
	}
	return a, nil
}

func checkListen(a netip.AddrPort) error {
	if !a.IsValid() {
		return errors.New("listen: empty address: want ADDR:PORT such as 0.0.0.0:3478 or [::]:3478")
	}
	if ip := a.Addr(); ip.IsMulticast() || ip.Is4() && ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fmt.Errorf("listen %s: a relay cannot serve on a multicast or broadcast address; want a unicast or wildcard ADDR:PORT such as 0.0.0.0:3478", a)
	}
	return nil
}

// listenConflict reports why a and b cannot both be bound: the same address
// twice, or a wildcard and a specific address of the same family on the same
// port (the kernel refuses the second bind with EADDRINUSE). Port 0 asks the
// kernel for a free port, so it never conflicts.
func listenConflict(a, b netip.AddrPort) error {
	if a.Port() != b.Port() || a.Port() == 0 || a.Addr().Is4() != b.Addr().Is4() {
		return nil
	}
	if a == b {
		return fmt.Errorf("listen %s: given twice; give each address once", a)
	}
	if a.Addr().IsUnspecified() || b.Addr().IsUnspecified() {
		wild, other := a, b
		if b.Addr().IsUnspecified() {
			wild, other = b, a
		}
		return fmt.Errorf("listen %s: overlaps listen %s, which already covers every %s address on that port; give only one of them",
			other, wild, family(wild.Addr()))
	}
	return nil
}

func parseRelayAddress(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("relay-address %q: want an IPv4 or IPv6 address such as 203.0.113.7 or 2001:db8::7", s)
	}
	a = a.Unmap()
	switch {
	case a.Zone() != "":
		return netip.Addr{}, fmt.Errorf("relay-address %s: a relay address cannot have a zone; want a global address", a)
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return netip.Addr{}, fmt.Errorf("relay-address %s: want a unicast address of this host that peers can reach, not a wildcard, multicast or broadcast one", a)
	}
	return a, nil
}

func prefixParser(key string) func(string) (netip.Prefix, error) {
	return func(s string) (netip.Prefix, error) {
		var p netip.Prefix
		if strings.Contains(s, "/") {
			var err error
			if p, err = netip.ParsePrefix(s); err != nil {
				return p, fmt.Errorf("%s %q: want a CIDR such as 198.18.0.0/15 or 2001:db8::/32, or one address", key, s)
			}
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return p, fmt.Errorf("%s %q: want a CIDR such as 198.18.0.0/15 or 2001:db8::/32, or one address", key, s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%s %s: a zone has no place in a peer range; drop it", key, p)
		}
		if m := p.Masked(); m != p {
			return netip.Prefix{}, fmt.Errorf("%s %s: has host bits set; did you mean %s?", key, p, m)
		}
		if _, err := policy.New(policy.Config{Allow: []netip.Prefix{p}}); err != nil {
			return netip.Prefix{}, fmt.Errorf("%s %s: %w", key, p, err)
		}
		return p, nil
	}
}

func parsePortRange(s string) (lo, hi uint16, err error) {
	bad := fmt.Errorf("port-range %q: want MIN-MAX with 1 <= MIN <= MAX <= 65535, such as 49152-65535", s)
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return proto.DefaultPortMin, proto.DefaultPortMax, bad
	}
	l, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
	h, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 16)
	if err1 != nil || err2 != nil || l == 0 || l > h {
		return proto.DefaultPortMin, proto.DefaultPortMax, bad
	}
	return uint16(l), uint16(h), nil
}

// intSetter sets *dst to a whole number in [lo, hi]; zero, if it means
// something, is said by zero.
func intSetter(key string, dst *int, lo, hi int, zero string) func(string) error {
	return func(s string) error {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || v < lo || v > hi {
			want := fmt.Sprintf("a whole number from %d to %d", lo, hi)
			if zero != "" {
				want += fmt.Sprintf(" (0 means %s)", zero)
			}
			return fmt.Errorf("%s %q: want %s", key, s, want)
		}
		*dst = v
		return nil
	}
}

// parseSeconds reads a lifetime: a whole number of seconds ("600") or a Go
// duration of whole seconds ("10m", "600s").
func parseSeconds(key, s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 32); err == nil {
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("%s %q: want a duration of whole seconds such as 600s, 10m or 600", key, s)
	}
	if d < time.Second || d%time.Second != 0 {
		return 0, fmt.Errorf("%s %q: want a duration of whole seconds, at least 1s", key, s)
	}
	return d, nil
}

func formatSeconds(d time.Duration) string {
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

var bandwidthUnits = []struct {
	suffix string
	mult   int64
}{{"G", 1e9}, {"M", 1e6}, {"K", 1e3}, {"k", 1e3}, {"", 1}}

// parseBandwidth reads bytes per second: "0", "125000", "125K", "10M".
func parseBandwidth(s string) (int64, error) {
	t := strings.TrimSpace(s)
	for _, u := range bandwidthUnits {
		num, ok := strings.CutSuffix(t, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n < 0 || n > (1<<62)/u.mult {
			break
		}
		return n * u.mult, nil
	}
	return 0, fmt.Errorf("bandwidth %q: want bytes per second, a whole number with an optional K, M or G suffix (x1000) such as 1M; 0 means no limit", s)
}

func formatBandwidth(v int64) string {
	for _, u := range bandwidthUnits[:3] {
		if v != 0 && v%u.mult == 0 {
			return strconv.FormatInt(v/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(v, 10)
}

func checkSoftware(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("software %q: want UTF-8 text", s)
	}
	if n := utf8.RuneCountInString(s); n > maxSoftwareChars {
		return fmt.Errorf("software: %d characters is too long; want fewer than %d (RFC 8489)", n, maxSoftwareChars+1)
	}
	return nil
}

// checkMetrics accepts "", ":9090", "IP:PORT".
func checkMetrics(s string) error {
	if s == "" {
		return nil
	}
	bad := fmt.Errorf("metrics %q: want ADDR:PORT such as 127.0.0.1:9090, [::]:9090 or :9090, or nothing to serve no metrics", s)
	if port, ok := strings.CutPrefix(s, ":"); ok {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return bad
		}
		return nil
	}
	if _, err := netip.ParseAddrPort(s); err != nil {
		return bad
	}
	return nil
}

func checkControl(s string) error {
	switch {
	case s == "":
		return nil
	case !filepath.IsAbs(s):
		return fmt.Errorf("control %q: want an absolute path such as %s, or nothing for no control socket", s, DefaultControl)
	case len(s) > maxSocketPath:
		return fmt.Errorf("control %q: %d bytes is too long for a unix socket path; want at most %d", s, len(s), maxSocketPath)
	}
	return nil
}

// parseInterface checks an xdp interface name as the kernel would take it.
func parseInterface(s string) (string, error) {
	switch {
	case s == "":
		return "", errors.New("xdp: empty; want a network interface name such as eth0")
	case len(s) > maxInterfaceName || strings.ContainsAny(s, "/: \t") || s == "." || s == "..":
		return "", fmt.Errorf("xdp %q: not a network interface name; want one such as eth0 (at most %d characters, no '/', ':' or spaces)", s, maxInterfaceName)
	}
	return s, nil
}

// maxInterfaceName is IFNAMSIZ less its terminating NUL.
const maxInterfaceName = 15

func checkXDPMaps(s string) error {
	if s != "" && !filepath.IsAbs(s) {
		return fmt.Errorf("xdp-maps %q: want an absolute path on a bpf filesystem, such as /sys/fs/bpf/relaybox", s)
	}
	return nil
}

// checkXDP checks the xdp keys together, and with the listen addresses.
func (c *Config) checkXDP() error {
	var errs []error
	for i, name := range c.XDP {
		if _, err := parseInterface(name); err != nil {
			errs = append(errs, err)
		}
		if slices.Contains(c.XDP[:i], name) {
			errs = append(errs, fmt.Errorf("xdp %s: given twice; give each interface once", name))
		}
	}
	if err := checkXDPMaps(c.XDPMaps); err != nil {
		errs = append(errs, err)
	}
	if (c.XDPMode == bpf.ModeNative || c.XDPMode == bpf.ModeGeneric) && len(c.XDP) == 0 {
		errs = append(errs, fmt.Errorf("xdp-mode %s: no interface to attach to; give xdp too (on the appliance, init attaches XDP: set its xdp key to %s instead)", c.XDPMode, c.XDPMode))
	}
	if _, err := bpf.ParseMode(c.XDPMode.String()); err != nil {
		errs = append(errs, fmt.Errorf("xdp-mode: %w", err)) // a Config built in code
	}
	if c.xdpEnabled() && len(c.Listen) > 1 {
		// The program knows one listen port, compiled in at load.
		for _, a := range c.Listen[1:] {
			if a.Port() != c.Listen[0].Port() || a.Port() == 0 {
				errs = append(errs, fmt.Errorf("listen %s and %s: the XDP data plane takes ChannelData on one port; give every listen address the same port, not 0", c.Listen[0], a))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// ReadSecretFile reads a file of TURN REST secrets: one per line, blank
// lines and lines starting with # skipped, spaces at either end trimmed.
// A file with no secret is an error: an operator who points the relay at
// an empty file has made a mistake, not asked for no secrets.
func ReadSecretFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth-secret-file: %w", err)
	}
	defer f.Close()
	var secrets []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		secrets = append(secrets, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth-secret-file %s: %w", path, err)
	}
	if len(secrets) == 0 {
		return nil, fmt.Errorf("auth-secret-file %s: no secret in it; want one secret per line", path)
	}
	return secrets, nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

func joinAddrs(addrs []netip.AddrPort) string { return join(addrs) }
func joinIPs(addrs []netip.Addr) string       { return join(addrs) }
func joinPrefixes(p []netip.Prefix) string    { return join(p) }

func join[T fmt.Stringer](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.String()
	}
	return strings.Join(s, ",")
}

// levelNames are the log-level key's values. It takes only the four names
// an operator would type, unlike slog.Level's own parser (which also takes
// "INFO+2").
var levelNames = []struct {
	name  string
	level slog.Level
}{
	{"debug", slog.LevelDebug},
	{"info", slog.LevelInfo},
	{"warn", slog.LevelWarn},
	{"error", slog.LevelError},
}

func levelName(l slog.Level) (string, bool) {
	for _, n := range levelNames {
		if n.level == l {
			return n.name, true
		}
	}
	return l.String(), false
}
